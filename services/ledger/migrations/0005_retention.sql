-- Retention (services/ledger/retention.py): the indexes its batched deletes walk, the wall
-- time each market_data row was stored, and how far each agent's equity curve is thinned.

CREATE INDEX IF NOT EXISTS processed_messages_by_time ON processed_messages (processed_at);
CREATE INDEX IF NOT EXISTS applied_ticks_by_time ON applied_ticks (applied_at);
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at)
    WHERE published_at IS NOT NULL;

-- data_timestamp is market time (a replay's is months old); stored_at is when the ledger
-- stored the row, so rows a redelivered snapshot or a late verdict may still look up are
-- kept however old their market time. Rows stored before this migration get its time.
ALTER TABLE market_data ADD COLUMN IF NOT EXISTS stored_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS market_data_by_time ON market_data (data_timestamp);
-- Each symbol's newest row (its funding rate) is never pruned: found through this index.
CREATE INDEX IF NOT EXISTS market_data_by_symbol ON market_data (symbol, data_timestamp);

-- Snapshots of each agent before thinned_until are thinned; later ones are not yet.
CREATE TABLE IF NOT EXISTS equity_thinning (
    llm_id        varchar(64) PRIMARY KEY REFERENCES llm_accounts (llm_id),
    thinned_until timestamptz NOT NULL
);
