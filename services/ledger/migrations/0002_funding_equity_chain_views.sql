-- Issue 6: funding payments, equity snapshots, the decision hash chain and SPEC.md's views.

ALTER TABLE llm_accounts ADD COLUMN IF NOT EXISTS total_funding numeric NOT NULL DEFAULT 0;

-- One row per payment; positive = the account paid, negative = it received.
CREATE TABLE IF NOT EXISTS funding_payments (
    id           bigserial   PRIMARY KEY,
    llm_id       varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    position_id  uuid        NOT NULL REFERENCES positions (id),
    symbol       text        NOT NULL,
    funding_time timestamptz NOT NULL,
    mark_price   numeric     NOT NULL,
    quantity     numeric     NOT NULL,
    funding_rate numeric     NOT NULL,
    amount       numeric     NOT NULL,
    paid_at      timestamptz NOT NULL,
    UNIQUE (position_id, funding_time)
);
CREATE INDEX IF NOT EXISTS funding_payments_by_account ON funding_payments (llm_id, funding_time);

CREATE TABLE IF NOT EXISTS equity_snapshots (
    id             bigserial   PRIMARY KEY,
    llm_id         varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    at             timestamptz NOT NULL,
    source         text        NOT NULL,
    equity         numeric     NOT NULL,
    balance        numeric     NOT NULL,
    margin_used    numeric     NOT NULL,
    unrealized_pnl numeric     NOT NULL,
    total_fees     numeric     NOT NULL,
    total_funding  numeric     NOT NULL
);
CREATE INDEX IF NOT EXISTS equity_snapshots_by_account ON equity_snapshots (llm_id, at, id);

-- The decision log's hash chain: hash = sha256(prev_hash || canonical JSON of the row).
-- ``decision`` keeps the whole Decision as published, so fields added later are stored too.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS decision jsonb;
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS prev_hash text;
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS hash text;
CREATE UNIQUE INDEX IF NOT EXISTS decisions_by_seq ON decisions (seq);
CREATE INDEX IF NOT EXISTS decisions_by_account ON decisions (llm_id, applied_at);

-- The chain's head, locked by each append so two appends cannot fork the chain.
CREATE TABLE IF NOT EXISTS decision_chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);
INSERT INTO decision_chain_head (id, seq, hash)
VALUES (true, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;

-- SPEC.md's views.
CREATE OR REPLACE VIEW llm_leaderboard AS
SELECT a.llm_id,
       a.display_name,
       a.provider,
       a.model_name,
       a.balance,
       a.margin_used,
       a.balance + a.margin_used + a.unrealized_pnl AS equity,
       a.total_pnl,
       a.realized_pnl,
       a.unrealized_pnl,
       a.total_fees,
       a.total_funding,
       round((a.balance + a.margin_used + a.unrealized_pnl - a.initial_balance)
             / a.initial_balance * 100, 4) AS roi_pct,
       a.total_trades,
       a.winning_trades,
       a.losing_trades,
       CASE WHEN a.winning_trades + a.losing_trades = 0 THEN 0
            ELSE round(a.winning_trades::numeric / (a.winning_trades + a.losing_trades) * 100, 4)
       END AS win_rate,
       a.open_positions,
       a.is_active,
       rank() OVER (ORDER BY a.balance + a.margin_used + a.unrealized_pnl DESC) AS rank
FROM llm_accounts a
ORDER BY equity DESC, a.total_pnl DESC, a.llm_id;

CREATE OR REPLACE VIEW active_positions_summary AS
SELECT p.id AS position_id,
       p.llm_id,
       a.display_name,
       p.symbol,
       p.side,
       p.entry_price,
       p.current_price,
       p.quantity,
       p.leverage,
       p.margin,
       p.unrealized_pnl,
       round(p.unrealized_pnl / p.margin * 100, 4) AS pnl_pct,
       p.liquidation_price,
       p.stop_loss,
       p.take_profit,
       p.opened_at,
       now() - p.opened_at AS duration
FROM positions p
JOIN llm_accounts a ON a.llm_id = p.llm_id
WHERE p.status = 'OPEN';

CREATE OR REPLACE VIEW llm_trading_stats AS
SELECT a.llm_id,
       a.display_name,
       coalesce(t.closed_trades, 0)  AS closed_trades,
       coalesce(t.wins, 0)           AS winning_trades,
       coalesce(t.losses, 0)         AS losing_trades,
       t.average_win,
       t.average_loss,
       t.best_trade,
       t.worst_trade,
       coalesce(t.fees, 0)           AS total_fees,
       coalesce(f.funding, 0)        AS total_funding,
       coalesce(p.open_positions, 0) AS open_positions,
       coalesce(p.exposure, 0)       AS market_exposure,
       coalesce(p.margin, 0)         AS margin_in_use,
       coalesce(c.llm_cost, 0)       AS llm_cost_usd
FROM llm_accounts a
LEFT JOIN (
    SELECT llm_id,
           count(*) FILTER (WHERE exit_price IS NOT NULL) AS closed_trades,
           count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl > 0) AS wins,
           count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl <= 0) AS losses,
           avg(realized_pnl) FILTER (WHERE realized_pnl > 0) AS average_win,
           avg(realized_pnl) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl <= 0)
               AS average_loss,
           max(realized_pnl) AS best_trade,
           min(realized_pnl) AS worst_trade,
           sum(fees) AS fees
    FROM trades GROUP BY llm_id
) t ON t.llm_id = a.llm_id
LEFT JOIN (
    SELECT llm_id, sum(amount) AS funding FROM funding_payments GROUP BY llm_id
) f ON f.llm_id = a.llm_id
LEFT JOIN (
    SELECT llm_id, count(*) AS open_positions, sum(current_price * quantity) AS exposure,
           sum(margin) AS margin
    FROM positions WHERE status = 'OPEN' GROUP BY llm_id
) p ON p.llm_id = a.llm_id
LEFT JOIN (
    SELECT llm_id, sum(estimated_cost) AS llm_cost FROM llm_api_calls GROUP BY llm_id
) c ON c.llm_id = a.llm_id;
