"""Configuration from the environment (and ``.env``), read once at start-up.

Every service reads the same ``Settings``; the trading limits in it are the ones the
risk service enforces and the agents' prompt states, so the two cannot drift.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
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
    binance_base_url: str = Field(default="https://fapi.binance.com", alias="BINANCE_BASE_URL")
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
    metrics_host: str = Field(default="127.0.0.1", alias="METRICS_HOST")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, alias="METRICS_PORT", description="0 picks a free port."
    )
    log_dir: Path | None = Field(default=None, alias="LOG_DIR")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    max_deliver: int = Field(default=5, ge=1, alias="ARENA_MAX_DELIVER")
    request_timeout: float = Field(default=2.0, gt=0, alias="ARENA_REQUEST_TIMEOUT")

    min_margin_usd: Decimal = Field(default=Decimal(10), alias="ARENA_MIN_MARGIN_USD")
    max_margin_usd: Decimal = Field(default=Decimal(30), alias="ARENA_MAX_MARGIN_USD")
    max_leverage: int = Field(default=10, ge=1, alias="ARENA_MAX_LEVERAGE")
    max_open_positions: int = Field(default=3, ge=1, alias="ARENA_MAX_OPEN_POSITIONS")
    max_margin_utilisation: Decimal = Field(
        default=Decimal("0.9"), gt=0, le=1, alias="ARENA_MAX_MARGIN_UTILISATION"
    )
    taker_fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=0, alias="ARENA_TAKER_FEE_RATE")
    instruments_file: Path | None = Field(
        default=None,
        alias="ARENA_INSTRUMENTS_FILE",
        description="TOML overrides of the instrument table (services/common/instruments.py).",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip().upper() for s in value.split(",") if s.strip())
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("ARENA_SYMBOLS must name at least one symbol")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not Decimal(0) < self.min_margin_usd <= self.max_margin_usd:
            raise ValueError(
                "need 0 < ARENA_MIN_MARGIN_USD <= ARENA_MAX_MARGIN_USD, got "
                f"{self.min_margin_usd} and {self.max_margin_usd}"
            )
        if self.decision_seconds is not None and self.decision_seconds >= self.cycle_seconds:
            raise ValueError(
                f"ARENA_DECISION_SECONDS ({self.decision_seconds:g}) must be shorter than "
                f"ARENA_CYCLE_SECONDS ({self.cycle_seconds:g})"
            )
        return self

    @property
    def limits(self) -> TradingLimits:
        return TradingLimits(
            min_margin_usd=self.min_margin_usd,
            max_margin_usd=self.max_margin_usd,
            max_leverage=self.max_leverage,
            max_open_positions=self.max_open_positions,
            max_margin_utilisation=self.max_margin_utilisation,
            taker_fee_rate=self.taker_fee_rate,
        )

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
