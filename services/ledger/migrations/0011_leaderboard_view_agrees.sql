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
SELECT llm_id, display_name, provider, model_name, balance, margin_used, equity, total_pnl,
       realized_pnl, unrealized_pnl, total_fees, total_funding,
       arena_round_half_even((equity - initial_balance) / initial_balance * 100, 4) AS roi_pct,
       total_trades, winning_trades, losing_trades,
       CASE WHEN winning_trades + losing_trades = 0 THEN 0
            ELSE arena_round_half_even(
                     winning_trades::numeric / (winning_trades + losing_trades) * 100, 4)
       END AS win_rate,
       open_positions, is_active,
       row_number() OVER (ORDER BY equity DESC, total_pnl DESC, llm_id) AS rank
FROM (SELECT *, balance + margin_used + unrealized_pnl AS equity FROM llm_accounts) a
ORDER BY equity DESC, total_pnl DESC, llm_id;
