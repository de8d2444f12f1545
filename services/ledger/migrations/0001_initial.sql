-- The ledger's tables: SPEC.md's six (with its column names) plus decisions, cycles,
-- the processed-message table (exactly-once effects) and the outbox (no lost events).
-- Money, prices and quantities are NUMERIC without scale, so nothing is ever rounded here.

CREATE TABLE llm_accounts (
    llm_id           varchar(64) PRIMARY KEY,
    provider         text        NOT NULL,
    model_name       text        NOT NULL,
    display_name     text        NOT NULL,
    balance          numeric     NOT NULL CHECK (balance >= 0),
    margin_used      numeric     NOT NULL DEFAULT 0 CHECK (margin_used >= 0),
    total_pnl        numeric     NOT NULL DEFAULT 0,
    realized_pnl     numeric     NOT NULL DEFAULT 0,
    unrealized_pnl   numeric     NOT NULL DEFAULT 0,
    total_fees       numeric     NOT NULL DEFAULT 0,
    total_trades     integer     NOT NULL DEFAULT 0,
    winning_trades   integer     NOT NULL DEFAULT 0,
    losing_trades    integer     NOT NULL DEFAULT 0,
    open_positions   integer     NOT NULL DEFAULT 0 CHECK (open_positions >= 0),
    is_active        boolean     NOT NULL DEFAULT true,
    initial_balance  numeric     NOT NULL CHECK (initial_balance > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    llm_id            varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    symbol            text        NOT NULL,
    side              text        NOT NULL CHECK (side IN ('LONG', 'SHORT')),
    entry_price       numeric     NOT NULL CHECK (entry_price > 0),
    current_price     numeric     NOT NULL,
    quantity          numeric     NOT NULL CHECK (quantity > 0),
    leverage          integer     NOT NULL CHECK (leverage >= 1),
    margin            numeric     NOT NULL CHECK (margin > 0),
    unrealized_pnl    numeric     NOT NULL DEFAULT 0,
    liquidation_price numeric,
    stop_loss         numeric,
    take_profit       numeric,
    status            text        NOT NULL DEFAULT 'OPEN'
                                  CHECK (status IN ('OPEN', 'CLOSED', 'LIQUIDATED')),
    opened_at         timestamptz NOT NULL,
    closed_at         timestamptz,
    cycle_id          text,
    entry_fee         numeric     NOT NULL
);
-- No pyramiding: one open position per account and symbol.
CREATE UNIQUE INDEX positions_one_open_per_symbol
    ON positions (llm_id, symbol) WHERE status = 'OPEN';
CREATE INDEX positions_open_by_symbol ON positions (symbol) WHERE status = 'OPEN';

CREATE TABLE trades (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    llm_id         varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    position_id    uuid        NOT NULL REFERENCES positions (id),
    symbol         text        NOT NULL,
    action         text        NOT NULL CHECK (action IN ('BUY', 'SELL')),
    side           text        NOT NULL CHECK (side IN ('LONG', 'SHORT')),
    entry_price    numeric     NOT NULL,
    exit_price     numeric,
    quantity       numeric     NOT NULL,
    realized_pnl   numeric,
    pnl_percentage numeric,
    fees           numeric     NOT NULL,
    exit_reason    text,
    executed_at    timestamptz NOT NULL,
    closed_at      timestamptz,
    cycle_id       text
);
CREATE INDEX trades_by_account ON trades (llm_id, executed_at);
CREATE INDEX trades_by_position ON trades (position_id);

CREATE TABLE market_data (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol           text        NOT NULL,
    price            numeric     NOT NULL,
    mark_price       numeric,
    volume_24h       numeric,
    price_change_24h numeric,
    high_24h         numeric,
    low_24h          numeric,
    funding_rate     numeric,
    data_timestamp   timestamptz NOT NULL,
    cycle_id         text,
    UNIQUE (cycle_id, symbol)
);

CREATE TABLE rejected_decisions (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    llm_id           varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    symbol           text,
    decision         text        NOT NULL,
    reasoning        text,
    rejection_reason text        NOT NULL,
    confidence       numeric,
    created_at       timestamptz NOT NULL DEFAULT now(),
    decision_id      text,
    cycle_id         text,
    reason_codes     text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX rejected_decisions_by_account ON rejected_decisions (llm_id, created_at);

CREATE TABLE llm_api_calls (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    llm_id            varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    provider          text        NOT NULL,
    model             text        NOT NULL,
    response_time_ms  integer     NOT NULL,
    prompt_tokens     integer     NOT NULL,
    completion_tokens integer     NOT NULL,
    estimated_cost    numeric     NOT NULL,
    success           boolean     NOT NULL,
    called_at         timestamptz NOT NULL,
    call_id           text        NOT NULL UNIQUE,
    cycle_id          text,
    error             text
);
CREATE INDEX llm_api_calls_by_account ON llm_api_calls (llm_id, called_at);

CREATE TABLE cycles (
    cycle_id          text        PRIMARY KEY,
    sequence          integer     NOT NULL,
    started_at        timestamptz NOT NULL,
    decision_deadline timestamptz NOT NULL,
    expected_agents   text[]      NOT NULL,
    status            text        NOT NULL DEFAULT 'running'
                                  CHECK (status IN ('running', 'completed', 'timed_out')),
    completed_at      timestamptz,
    duration_seconds  double precision
);
CREATE INDEX cycles_running ON cycles (decision_deadline) WHERE status = 'running';

-- One row per applied verdict. Issue 6 adds the hash chain (prev_hash, hash) here.
CREATE TABLE decisions (
    decision_id   text        PRIMARY KEY,
    cycle_id      text        NOT NULL,
    llm_id        varchar(64) NOT NULL REFERENCES llm_accounts (llm_id),
    actions       jsonb       NOT NULL,
    reasoning     text        NOT NULL DEFAULT '',
    model         text        NOT NULL DEFAULT '',
    prompt_sha256 text,
    error         text,
    decided_at    timestamptz NOT NULL,
    results       jsonb       NOT NULL,
    applied_at    timestamptz NOT NULL
);
CREATE INDEX decisions_by_cycle ON decisions (cycle_id);

CREATE TABLE processed_messages (
    msg_id       text        PRIMARY KEY,
    consumer     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    message_type text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
