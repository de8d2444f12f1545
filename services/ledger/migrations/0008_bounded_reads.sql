-- Reads bounded by what they return: an index for every query the gateway makes, the
-- equity curve's statistics kept per hour, and the point up to which `verify` found the
-- decision chain clean.

-- Pages, newest first, in the order the queries ask for (services/ledger/queries.py).
CREATE INDEX IF NOT EXISTS trades_newest
    ON trades (executed_at DESC, (exit_price IS NULL), id);
CREATE INDEX IF NOT EXISTS trades_newest_by_account
    ON trades (llm_id, executed_at DESC, (exit_price IS NULL), id);
CREATE INDEX IF NOT EXISTS decisions_newest
    ON decisions (applied_at DESC, seq DESC NULLS LAST);
CREATE INDEX IF NOT EXISTS decisions_newest_by_account
    ON decisions (llm_id, applied_at DESC, seq DESC NULLS LAST);
CREATE INDEX IF NOT EXISTS positions_newest_by_status
    ON positions (status, opened_at DESC, id);
CREATE INDEX IF NOT EXISTS positions_newest_by_account
    ON positions (llm_id, status, opened_at DESC, id);

-- The leaderboard's and the statistics' per-agent figures, read from the index alone.
CREATE INDEX IF NOT EXISTS decisions_with_error ON decisions (llm_id) WHERE error IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_api_calls_cost ON llm_api_calls (llm_id) INCLUDE (estimated_cost);
CREATE INDEX IF NOT EXISTS trades_closes
    ON trades (llm_id) INCLUDE (realized_pnl) WHERE exit_price IS NOT NULL;

-- The equity curve in hourly buckets per agent (services/ledger/curve.py): what max
-- drawdown and the Sharpe ratio need of each bucket, so /trading/stats combines a few
-- rows per agent and hour instead of reading every snapshot. `stale`: retention thinned
-- the bucket, it is summed again.
CREATE TABLE IF NOT EXISTS equity_curve_buckets (
    llm_id          varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    bucket_start    timestamptz NOT NULL,
    points          integer     NOT NULL,
    first_equity    numeric     NOT NULL,
    last_equity     numeric     NOT NULL,
    highest         numeric     NOT NULL,
    lowest          numeric     NOT NULL,
    largest_fall    numeric     NOT NULL,
    returns         integer     NOT NULL,
    returns_sum     numeric     NOT NULL,
    returns_squares numeric     NOT NULL,
    stale           boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (llm_id, bucket_start)
);
CREATE INDEX IF NOT EXISTS equity_curve_buckets_stale
    ON equity_curve_buckets (llm_id, bucket_start) WHERE stale;

-- The highest equity_snapshots id summed into the buckets.
CREATE TABLE IF NOT EXISTS equity_curve_position (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    folded_id bigint  NOT NULL
);
INSERT INTO equity_curve_position (id, folded_id) VALUES (true, 0) ON CONFLICT DO NOTHING;

-- The last clean `verify`: the chain was intact up to (seq, hash) and every proposal
-- recorded before proposals_until had reached the books. The next check starts there.
CREATE TABLE IF NOT EXISTS verify_checkpoint (
    id              boolean     PRIMARY KEY DEFAULT true CHECK (id),
    seq             bigint      NOT NULL,
    hash            text        NOT NULL,
    proposals_until timestamptz NOT NULL,
    verified_at     timestamptz NOT NULL
);
