-- Every decision an agent proposed, recorded as the bus carried it. `verify` names any
-- proposal that never reached the books (applied, rejected, or recorded late).
CREATE TABLE IF NOT EXISTS proposals (
    decision_id text        PRIMARY KEY,
    cycle_id    text        NOT NULL,
    llm_id      varchar(64) NOT NULL,
    decided_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS proposals_by_recorded_at ON proposals (recorded_at);
