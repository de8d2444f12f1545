"""The versioned prompt: the rules and limits, the market, the account. Pure and deterministic.

The same snapshot, portfolio and limits always give the same text, so its sha256 identifies
the question a model was asked (and keys recorded answers for replay).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.common.contracts import (
    Candle,
    MarketSnapshot,
    Portfolio,
    PositionStatus,
    PositionView,
    SymbolSnapshot,
)
from services.common.funding import FUNDING_INTERVAL_HOURS
from services.common.settings import TradingLimits

PROMPT_VERSION = "v1"
RECENT_CLOSES = 10
CONTEXT_HOURS = 4


SEPARATOR = "\n\n---\n\n"


class Transcript:
    """A system part and the messages after it, as one document (what is stored with a
    decision) whose sha256 names the question (and keys a recorded answer for replay)."""

    def parts(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def text(self) -> str:
        return SEPARATOR.join(self.parts())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class Prompt(Transcript):
    system: str
    user: str
    version: str = PROMPT_VERSION

    def parts(self) -> tuple[str, ...]:
        return (self.system, self.user)


OUTPUT_FORMAT = """\
Answer with ONE JSON object and nothing else:
{
  "reasoning": "<why, in a few sentences>",
  "actions": [
    {
      "action": "BUY" | "SELL" | "CLOSE" | "HOLD",
      "symbol": "<one of the symbols above; omitted for HOLD>",
      "margin_usd": <number, BUY/SELL only>,
      "leverage": <integer, BUY/SELL only>,
      "stop_loss": <price, optional>,
      "take_profit": <price, optional>,
      "confidence": <0..1, optional>,
      "invalidation": "<what would prove you wrong, optional>"
    }
  ]
}
BUY opens a long, SELL opens a short, CLOSE closes your open position in that symbol,
HOLD does nothing. At most one action per symbol."""


def system_part(limits: TradingLimits, symbols: Sequence[str]) -> str:
    return (
        f"You are a trader in a paper-trading competition (prompt {PROMPT_VERSION}). You trade "
        "USDT-margined perpetual futures against other traders; the highest equity wins.\n\n"
        "Rules (orders breaking them are rejected):\n"
        f"- Tradable symbols: {', '.join(symbols)}.\n"
        f"- Margin per new position: {limits.min_margin_usd} to {limits.max_margin_usd} USD.\n"
        f"- Leverage: {limits.min_leverage}x to {limits.max_leverage}x (integer).\n"
        f"- At most {limits.max_open_positions} open positions at once, one per symbol.\n"
        f"- Margin in use may not exceed {_pct(limits.max_margin_utilisation)} of equity.\n"
        f"- Taker fee: {_pct(limits.taker_fee_rate)} of notional on open and on close; "
        f"funding is paid or received every {FUNDING_INTERVAL_HOURS} hours.\n"
        "- A stop loss must be on the losing side of the entry and before the liquidation "
        "price; a take profit on the winning side.\n"
        "- You cannot add to or flip a position in one step: CLOSE it first.\n\n" + OUTPUT_FORMAT
    )


def user_part(snapshot: MarketSnapshot, portfolio: Portfolio, symbols: Sequence[str]) -> str:
    lines = [f"Cycle {snapshot.cycle_id}, market at {snapshot.taken_at.isoformat()}.", ""]
    wanted = set(symbols)
    for s in sorted(snapshot.symbols, key=lambda s: s.symbol):
        if s.symbol in wanted:
            lines += _symbol_lines(s)
    for symbol, reason in sorted(snapshot.unavailable.items()):
        lines.append(f"{symbol}: no data this cycle ({reason}).")
    lines += ["", *_account_lines(portfolio)]
    lines += ["", "Decide now. Answer with the JSON object only."]
    return "\n".join(lines)


def build_prompt(
    snapshot: MarketSnapshot,
    portfolio: Portfolio,
    limits: TradingLimits,
    symbols: Sequence[str],
) -> Prompt:
    return Prompt(system_part(limits, symbols), user_part(snapshot, portfolio, symbols))


def _symbol_lines(s: SymbolSnapshot) -> list[str]:
    ind = s.indicators
    lines = [
        f"## {s.symbol}",
        f"price {s.last_price} (mark {s.mark_price}), 24h change {s.price_change_pct_24h}%, "
        f"24h high {s.high_24h}, low {s.low_24h}, volume {s.volume_24h}",
        f"funding rate {s.funding_rate} (next at {s.next_funding_time.isoformat()})",
        "indicators (latest candle): "
        + ", ".join(
            f"{name} {_num(value)}"
            for name, value in (
                ("RSI7", ind.rsi_7),
                ("RSI14", ind.rsi_14),
                ("EMA20", ind.ema_20),
                ("EMA50", ind.ema_50),
                ("MACD", ind.macd),
                ("signal", ind.macd_signal),
                ("hist", ind.macd_hist),
                ("BB upper", ind.bb_upper),
                ("BB middle", ind.bb_middle),
                ("BB lower", ind.bb_lower),
                ("ATR14", ind.atr_14),
            )
        ),
    ]
    candles = s.candles
    if candles:
        recent = candles[-RECENT_CLOSES:]
        lines.append(
            f"last {len(recent)} closes, oldest first: " + ", ".join(str(c.close) for c in recent)
        )
        lines.append(_context_line(candles))
    return [*lines, ""]


def _context_line(candles: Sequence[Candle]) -> str:
    last = candles[-1].open_time
    window = [c for c in candles if (last - c.open_time).total_seconds() < CONTEXT_HOURS * 3600]
    first, high, low = window[0], max(c.high for c in window), min(c.low for c in window)
    change = (window[-1].close - first.open) / first.open * 100 if first.open else Decimal(0)
    return (
        f"{CONTEXT_HOURS}h context: open {first.open}, close {window[-1].close}, "
        f"change {change:.2f}%, high {high}, low {low}"
    )


def _account_lines(portfolio: Portfolio) -> list[str]:
    a = portfolio.account
    lines = [
        "## Your account",
        f"balance {a.balance} USD, equity {a.equity} USD, margin in use {a.margin_used} USD, "
        f"unrealized PnL {a.unrealized_pnl} USD, realized PnL {a.realized_pnl} USD, "
        f"trades {a.total_trades}",
    ]
    held = [p for p in portfolio.positions if p.status == PositionStatus.OPEN]
    if not held:
        return [*lines, "open positions: none"]
    lines.append("open positions:")
    return lines + [_position_line(p) for p in sorted(held, key=lambda p: p.symbol)]


def _position_line(p: PositionView) -> str:
    return (
        f"- {p.symbol} {p.side.value} {p.leverage}x: entry {p.entry_price}, now "
        f"{p.current_price}, quantity {p.quantity}, margin {p.margin}, PnL {p.unrealized_pnl}, "
        f"liquidation {p.liquidation_price or 'n/a'}, stop {p.stop_loss or 'none'}, "
        f"target {p.take_profit or 'none'}"
    )


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"
