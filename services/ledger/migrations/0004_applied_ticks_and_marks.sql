-- A tick is applied once by its own id, whatever Nats-Msg-Id its copy came under: the row
-- commits in the tick's transaction, and a second claim of the id changes nothing.
CREATE TABLE IF NOT EXISTS applied_ticks (
    tick_id    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL
);

-- The market time of each symbol's latest applied mark (tick or cycle snapshot): marks only
-- move forward, so a late or out-of-order tick cannot set a position back to an older price.
CREATE TABLE IF NOT EXISTS symbol_marks (
    symbol     text        PRIMARY KEY,
    marked_at  timestamptz NOT NULL,
    mark_price numeric     NOT NULL
);
