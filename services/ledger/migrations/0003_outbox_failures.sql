-- Review fix: an outbox row that cannot be decoded (unknown message type, invalid payload)
-- is set aside with its error instead of blocking every row behind it.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS error text;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (id) WHERE failed_at IS NOT NULL;
