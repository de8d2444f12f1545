"""Binance USD-M futures wire format to the arena's types (pure, no I/O).

Binance sends prices and quantities as JSON strings and times as epoch milliseconds;
strings go straight to ``Decimal`` so no precision is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.common.contracts import Candle, SymbolFilters
from services.market.binance.errors import MalformedResponse


def decimal(value: object, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MalformedResponse(f"{what}: {value!r} is not a number") from exc


def millis(value: object, what: str) -> datetime:
    if not isinstance(value, int):
        raise MalformedResponse(f"{what}: {value!r} is not epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def _field(body: dict[str, Any], key: str, what: str) -> Any:
    if key not in body:
        raise MalformedResponse(f"{what}: field {key!r} is missing")
    return body[key]


def _decimals(data: dict[str, Any], what: str, **keys: str) -> dict[str, Decimal]:
    """``{ours: Decimal(data[theirs])}`` for each ``ours="theirs"`` field name pair."""
    return {ours: decimal(_field(data, theirs, what), what) for ours, theirs in keys.items()}


def parse_klines(body: object, what: str = "klines") -> tuple[Candle, ...]:
    """``[[openTime, "open", "high", "low", "close", "volume", closeTime, ...], ...]``."""
    if not isinstance(body, list):
        raise MalformedResponse(f"{what}: expected a JSON array")
    candles = []
    for row in body:
        if not isinstance(row, list) or len(row) < 6:
            raise MalformedResponse(f"{what}: a kline is not an array of at least 6 values")
        candles.append(
            Candle(
                open_time=millis(row[0], what),
                open=decimal(row[1], what),
                high=decimal(row[2], what),
                low=decimal(row[3], what),
                close=decimal(row[4], what),
                volume=decimal(row[5], what),
            )
        )
    return tuple(candles)


def kline_close_time(body: object) -> list[datetime]:
    """Close times of raw klines (index 6), to drop the candle still forming."""
    if not isinstance(body, list):
        raise MalformedResponse("klines: expected a JSON array")
    return [millis(row[6], "klines") for row in body]


@dataclass(frozen=True)
class Ticker24h:
    last_price: Decimal
    price_change_pct: Decimal
    volume: Decimal
    high: Decimal
    low: Decimal


def parse_ticker(body: object) -> Ticker24h:
    what = "ticker/24hr"
    fields = _decimals(
        _object(body, what),
        what,
        last_price="lastPrice",
        price_change_pct="priceChangePercent",
        volume="volume",
        high="highPrice",
        low="lowPrice",
    )
    return Ticker24h(**fields)


def parse_price(body: object) -> Decimal:
    what = "ticker/price"
    return decimal(_field(_object(body, what), "price", what), what)


@dataclass(frozen=True)
class PremiumIndex:
    mark_price: Decimal
    funding_rate: Decimal
    next_funding_time: datetime


def parse_premium_index(body: object) -> PremiumIndex:
    what = "premiumIndex"
    data = _object(body, what)
    return PremiumIndex(
        **_decimals(data, what, mark_price="markPrice", funding_rate="lastFundingRate"),
        next_funding_time=millis(_field(data, "nextFundingTime", what), what),
    )


@dataclass(frozen=True)
class FundingRate:
    funding_time: datetime
    funding_rate: Decimal


def parse_funding_rates(body: object) -> tuple[FundingRate, ...]:
    what = "fundingRate"
    if not isinstance(body, list):
        raise MalformedResponse(f"{what}: expected a JSON array")
    return tuple(
        FundingRate(
            funding_time=millis(_field(_object(row, what), "fundingTime", what), what),
            funding_rate=decimal(_field(row, "fundingRate", what), what),
        )
        for row in body
    )


@dataclass(frozen=True)
class ExchangeInfo:
    filters: dict[str, SymbolFilters]
    status: dict[str, str]
    weight_limit: int | None


def parse_exchange_info(body: object) -> ExchangeInfo:
    what = "exchangeInfo"
    data = _object(body, what)
    weight_limit = None
    for limit in data.get("rateLimits", []):
        if limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval") == "MINUTE":
            weight_limit = int(limit["limit"]) // int(limit.get("intervalNum", 1))
    filters: dict[str, SymbolFilters] = {}
    status: dict[str, str] = {}
    for entry in _field(data, "symbols", what):
        symbol = _field(entry, "symbol", what)
        status[symbol] = str(entry.get("status", "TRADING"))
        by_type = {f.get("filterType"): f for f in entry.get("filters", [])}
        try:
            filters[symbol] = SymbolFilters(
                tick_size=decimal(by_type["PRICE_FILTER"]["tickSize"], what),
                step_size=decimal(by_type["LOT_SIZE"]["stepSize"], what),
                min_notional=decimal(by_type["MIN_NOTIONAL"]["notional"], what),
            )
        except KeyError as exc:
            raise MalformedResponse(f"{what}: {symbol} lacks filter field {exc}") from exc
    return ExchangeInfo(filters=filters, status=status, weight_limit=weight_limit)


def parse_error(body: object) -> tuple[int, str] | None:
    """``(code, msg)`` of a Binance error body, ``None`` when it is not one."""
    if isinstance(body, dict) and isinstance(body.get("code"), int) and "msg" in body:
        return body["code"], str(body["msg"])
    return None
