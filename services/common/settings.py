"""Configuration from the environment (and ``.env``), read once at start-up.

Every service reads the same ``Settings``; the trading limits in it are the ones the
risk service enforces and the agents' prompt states, so the two cannot drift.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.origins import parse_origins

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TradingLimits(BaseModel):
    """The rules of the game, shared by risk, ledger and the agents' prompt."""

    model_config = ConfigDict(frozen=True)

    min_margin_usd: Decimal = Decimal(10)
    max_margin_usd: Decimal = Decimal(30)
    min_leverage: int = 1
    max_leverage: int = 10
    max_open_positions: int = 3
    max_margin_utilisation: Decimal = Decimal("0.9")
    taker_fee_rate: Decimal = Decimal("0.0005")


DEFAULT_LIMITS = TradingLimits()


class Settings(BaseSettings):
    # hide_input_in_errors: an error must not print what it was given; for a check across
    # variables pydantic would show the whole environment read, API keys included.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    nats_url: str = Field(default="nats://127.0.0.1:4222", alias="NATS_URL")
    nats_creds: Path | None = Field(
        default=None,
        alias="NATS_CREDS",
        description="NATS credentials file (JWT + NKey); a user and password can go in NATS_URL.",
    )
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    database_pooler: bool | None = Field(
        default=None,
        alias="DATABASE_POOLER",
        description="Disable server-side prepared statements (PgBouncer / Supabase pooler). "
        "Detected from the URL when unset.",
    )
    agents_file: Path = Field(
        default=PROJECT_ROOT / "config" / "agents.toml", alias="ARENA_AGENTS_FILE"
    )
    agent_id: str | None = Field(default=None, alias="AGENT_ID")
    agent_ids: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        alias="ARENA_AGENT_IDS",
        description="Line-up entries one agent process hosts, comma-separated (each its own "
        "consumer, identity and heartbeat); overrides AGENT_ID.",
    )
    agents_per_process: int = Field(
        default=8,
        ge=1,
        alias="ARENA_AGENTS_PER_PROCESS",
        description="make run: baseline agents hosted per agent process (LLM agents always "
        "get a process each); 1: a process for every agent.",
    )
    cycle_seconds: float = Field(default=300, gt=0, alias="ARENA_CYCLE_SECONDS")
    decision_seconds: float | None = Field(
        default=None,
        gt=0,
        alias="ARENA_DECISION_SECONDS",
        description="Time agents have to decide; default 80 % of the cycle.",
    )
    tick_seconds: float = Field(default=60, gt=0, alias="ARENA_TICK_SECONDS")
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SYMBOLS, alias="ARENA_SYMBOLS"
    )
    initial_balance: Decimal = Field(default=Decimal(100), gt=0, alias="ARENA_INITIAL_BALANCE")
    seed: int = Field(default=42, alias="ARENA_SEED")
    market_source: str = Field(default="auto", alias="MARKET_SOURCE")
    replay_from: date | None = Field(
        default=None,
        alias="ARENA_REPLAY_FROM",
        description="A replay's first cycle at this day's start (the bars before it warm up).",
    )
    replay_to: date | None = Field(
        default=None, alias="ARENA_REPLAY_TO", description="A replay's last day (included)."
    )
    binance_base_url: str = Field(default="https://fapi.binance.com", alias="BINANCE_BASE_URL")
    binance_data_url: str = Field(default="https://data.binance.vision", alias="BINANCE_DATA_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    deepseek_api_key: SecretStr | None = Field(default=None, alias="DEEPSEEK_API_KEY")
    admin_token: SecretStr | None = Field(default=None, alias="ARENA_ADMIN_TOKEN")
    gateway_host: str = Field(default="127.0.0.1", alias="GATEWAY_HOST")
    gateway_port: int = Field(default=8000, ge=0, le=65535, alias="GATEWAY_PORT")
    ws_queue_size: int = Field(
        default=256,
        ge=1,
        alias="ARENA_WS_QUEUE_SIZE",
        description="Messages queued per WebSocket client before it is dropped as too slow.",
    )
    ws_max_clients: int = Field(
        default=500,
        ge=1,
        alias="ARENA_WS_MAX_CLIENTS",
        description="WebSocket clients served at once; more are refused (close 1013).",
    )
    ws_allowed_origins: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_origins)] = (
        Field(
            default=(),
            alias="ARENA_WS_ALLOWED_ORIGINS",
            description="Browser origins allowed on /ws, comma-separated; * allows any. Default: "
            "the gateway's own (http://GATEWAY_HOST:port, http://localhost:port, "
            "http://127.0.0.1:port). Clients that send no Origin (scripts) are always allowed.",
        )
    )
    ws_client_buffer_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        alias="ARENA_WS_CLIENT_BUFFER_BYTES",
        description="Bytes queued per WebSocket client before it is dropped as too slow "
        "(one message is always let through to an empty queue, whatever its size).",
    )
    ws_send_timeout: float = Field(
        default=5.0,
        gt=0,
        alias="ARENA_WS_SEND_TIMEOUT",
        description="Seconds a WebSocket client's socket may take to accept one message "
        "before the client is dropped as too slow.",
    )
    process_status_file: Path | None = Field(
        default=None,
        alias="ARENA_PROCESS_STATUS_FILE",
        description="Gateway: the supervisor's per-process restart counts (JSON), shown on "
        "/health; `make run` sets it.",
    )
    seasons_dir: Path | None = Field(
        default=None,
        alias="ARENA_SEASONS_DIR",
        description="Gateway: a folder of seasons (each a subfolder with its report.json, "
        "docs/seasons.md) served read-only under /seasons and on the dashboard; unset: none.",
    )
    metrics_host: str = Field(default="127.0.0.1", alias="METRICS_HOST")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, alias="METRICS_PORT", description="0 picks a free port."
    )
    log_dir: Path | None = Field(default=None, alias="LOG_DIR")
    recordings_dir: Path | None = Field(
        default=None,
        alias="ARENA_RECORDINGS_DIR",
        description="Live LLM agents whose line-up entry names no recordings folder record "
        "their answers in <this>/<agent id> (a season sets it).",
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    max_deliver: int = Field(
        default=5,
        ge=1,
        alias="ARENA_MAX_DELIVER",
        description="Deliveries a message whose handler fails unexpectedly gets before it is "
        "dead-lettered (an unavailable dependency is retried for as long as it takes).",
    )
    stream_max_age_seconds: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        alias="ARENA_STREAM_MAX_AGE_SECONDS",
        description="How long the event stream keeps a message.",
    )
    stream_max_bytes: int = Field(
        default=1024**3,
        ge=-1,
        alias="ARENA_STREAM_MAX_BYTES",
        description="Size cap of the event stream (oldest messages go first); -1: no cap.",
    )
    dlq_max_age_seconds: float = Field(
        default=30 * 24 * 3600,
        gt=0,
        alias="ARENA_DLQ_MAX_AGE_SECONDS",
        description="How long the dead-letter stream keeps a message.",
    )
    dlq_max_bytes: int = Field(
        default=256 * 1024**2,
        ge=-1,
        alias="ARENA_DLQ_MAX_BYTES",
        description="Size cap of the dead-letter stream; -1: no cap.",
    )
    request_timeout: float = Field(default=2.0, gt=0, alias="ARENA_REQUEST_TIMEOUT")

    # The trading limits, each overridable on its own; their defaults are TradingLimits'.
    min_margin_usd: Decimal = Field(
        default=DEFAULT_LIMITS.min_margin_usd, alias="ARENA_MIN_MARGIN_USD"
    )
    max_margin_usd: Decimal = Field(
        default=DEFAULT_LIMITS.max_margin_usd, alias="ARENA_MAX_MARGIN_USD"
    )
    max_leverage: int = Field(default=DEFAULT_LIMITS.max_leverage, ge=1, alias="ARENA_MAX_LEVERAGE")
    max_open_positions: int = Field(
        default=DEFAULT_LIMITS.max_open_positions, ge=1, alias="ARENA_MAX_OPEN_POSITIONS"
    )
    max_margin_utilisation: Decimal = Field(
        default=DEFAULT_LIMITS.max_margin_utilisation,
        gt=0,
        le=1,
        alias="ARENA_MAX_MARGIN_UTILISATION",
    )
    taker_fee_rate: Decimal = Field(
        default=DEFAULT_LIMITS.taker_fee_rate, ge=0, alias="ARENA_TAKER_FEE_RATE"
    )
    instruments_file: Path | None = Field(
        default=None,
        alias="ARENA_INSTRUMENTS_FILE",
        description="TOML overrides of the instrument table (services/common/instruments.py).",
    )

    # Retention: what the ledger prunes (services/ledger/retention.py, docs/deploy.md).
    retention_interval_minutes: float = Field(
        default=10,
        ge=0,
        alias="ARENA_RETENTION_INTERVAL_MINUTES",
        description="Minutes between the ledger's pruning passes; 0 turns pruning off.",
    )
    retention_batch_size: int = Field(
        default=5000,
        ge=1,
        alias="ARENA_RETENTION_BATCH_SIZE",
        description="Rows one pruning statement deletes at most, so none holds locks for long.",
    )
    retention_dedup_margin_hours: float = Field(
        default=24,
        ge=1,
        alias="ARENA_RETENTION_DEDUP_MARGIN_HOURS",
        description="Processed message and tick ids are kept for twice the stream's max age "
        "plus the dead letters' (a re-drive brings a message back under its id) plus this "
        "margin (clock skew, messages in flight), so a message coming back is recognised.",
    )
    retention_outbox_hours: float = Field(
        default=24,
        ge=0,
        alias="ARENA_RETENTION_OUTBOX_HOURS",
        description="Published outbox rows are deleted after this many hours (unsent rows "
        "never); 0 keeps them forever.",
    )
    retention_market_data_days: float = Field(
        default=0,
        ge=0,
        alias="ARENA_RETENTION_MARKET_DATA_DAYS",
        description="market_data rows older than this many days of market time are deleted "
        "(each symbol's newest row never); 0 keeps them forever.",
    )
    retention_equity_full_days: float = Field(
        default=7,
        ge=0,
        alias="ARENA_RETENTION_EQUITY_FULL_DAYS",
        description="Equity snapshots newer than this many days of market time are kept "
        "whole; older tick and decision snapshots are thinned. 0 never thins.",
    )
    retention_equity_bucket_minutes: int = Field(
        default=60,
        gt=0,
        alias="ARENA_RETENTION_EQUITY_BUCKET_MINUTES",
        description="Thinned snapshots keep, per agent and bucket of this many minutes, the "
        "highest, lowest and last equity and the largest fall; cycle snapshots are all kept.",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip().upper() for s in value.split(",") if s.strip())
        return value

    @field_validator("agent_ids", mode="before")
    @classmethod
    def _split_agent_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one symbol")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not Decimal(0) < self.min_margin_usd <= self.max_margin_usd:
            raise ValueError("need 0 < ARENA_MIN_MARGIN_USD <= ARENA_MAX_MARGIN_USD")
        if self.decision_seconds is not None and self.decision_seconds >= self.cycle_seconds:
            raise ValueError("ARENA_DECISION_SECONDS must be shorter than ARENA_CYCLE_SECONDS")
        return self

    @property
    def limits(self) -> TradingLimits:
        return TradingLimits.model_validate(self, from_attributes=True)

    @property
    def decision_window(self) -> timedelta:
        seconds = self.decision_seconds or self.cycle_seconds * 0.8
        return timedelta(seconds=seconds)

    @property
    def uses_pooler(self) -> bool:
        if self.database_pooler is not None:
            return self.database_pooler
        url = self.database_url or ""
        return "pooler" in url or ":6543" in url or "pgbouncer=true" in url


def settings_problems(exc: ValidationError) -> tuple[str, ...]:
    """One line per variable in error: its name and the problem, never its value."""
    problems: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        # A check across variables has no location; its message names the variables.
        name = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if message not in problems.setdefault(name, []):
            problems[name].append(message)
    return tuple(
        f"{name}: {'; '.join(messages)}" if name else "; ".join(messages)
        for name, messages in problems.items()
    )
