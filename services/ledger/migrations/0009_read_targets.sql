-- Reads within their targets with a month of history: the equity series written as JSON by
-- Postgres, and the statistics' running total per agent.

-- A timestamp as the services' JSON writes it (pydantic): UTC, `Z`, microseconds only when
-- there are any, e.g. 2025-01-01T00:00:00Z, 2025-01-01T00:00:00.500000Z.
CREATE OR REPLACE FUNCTION arena_json_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM t)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(t AT TIME ZONE 'UTC', '.US') END
        || 'Z'
$$;

-- A numeric as Python's str(Decimal) writes the same value read from Postgres: plain
-- notation, except below 1e-6 in magnitude (and a zero with more than six decimals),
-- which is scientific: 0.00000012 -> 1.2E-7, 0.00000000 -> 0E-8.
CREATE OR REPLACE FUNCTION arena_json_small_decimal(v numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v = 0 THEN '0E-' || scale(v) ELSE
        CASE WHEN v < 0 THEN '-' ELSE '' END
        || left(d, 1)
        || CASE WHEN length(d) > 1 THEN '.' || substr(d, 2) ELSE '' END
        || 'E' || (length(d) - 1 - scale(v))::text END
    FROM (SELECT ltrim(replace(abs(v)::text, '.', ''), '0') AS d) digits
$$;

-- Inlined into the query that calls it: the common case costs one comparison.
CREATE OR REPLACE FUNCTION arena_json_decimal(v numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(v) >= 0.000001 OR (v = 0 AND scale(v) <= 6) THEN v::text
                ELSE arena_json_small_decimal(v) END
$$;

-- Each agent's equity curve folded from its initial balance through every hourly bucket
-- before `through` (services/ledger/curve.py's Curve), so /trading/stats folds only the
-- newer buckets. A bucket before `through` summed again (a late snapshot, retention)
-- drops the row; the ledger folds it anew.
CREATE TABLE IF NOT EXISTS equity_curve_totals (
    llm_id          varchar(64) PRIMARY KEY REFERENCES llm_accounts (llm_id),
    through         timestamptz NOT NULL,
    last_equity     numeric,
    peak            numeric,
    worst           numeric     NOT NULL,
    returns         bigint      NOT NULL,
    returns_sum     numeric     NOT NULL,
    returns_squares numeric     NOT NULL
);
