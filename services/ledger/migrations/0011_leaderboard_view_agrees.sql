-- llm_leaderboard as the ledger's leaderboard answers it: one rank per agent in the
-- listed order (equity, then total PnL, then agent id; agents level on equity no longer
-- share a rank), and percentages rounded half to even, as the services' Decimals round.

-- round(v, places) rounding a tie to the even neighbour instead of away from zero.
CREATE OR REPLACE FUNCTION arena_round_half_even(v numeric, places integer) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN abs(v * power(10::numeric, places) - trunc(v * power(10::numeric, places))) = 0.5
             AND mod(trunc(v * power(10::numeric, places)), 2) = 0
        THEN trunc(v, places)
        ELSE round(v, places)
    END
$$;

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
       arena_round_half_even((a.balance + a.margin_used + a.unrealized_pnl - a.initial_balance)
                             / a.initial_balance * 100, 4) AS roi_pct,
       a.total_trades,
       a.winning_trades,
       a.losing_trades,
       CASE WHEN a.winning_trades + a.losing_trades = 0 THEN 0
            ELSE arena_round_half_even(
                     a.winning_trades::numeric / (a.winning_trades + a.losing_trades) * 100, 4)
       END AS win_rate,
       a.open_positions,
       a.is_active,
       row_number() OVER (
           ORDER BY a.balance + a.margin_used + a.unrealized_pnl DESC, a.total_pnl DESC, a.llm_id
       ) AS rank
FROM llm_accounts a
ORDER BY equity DESC, a.total_pnl DESC, a.llm_id;
