"""The trading rules: pure functions, no I/O.

Each rule looks at one action in its context and returns ``None`` (no objection) or a
``Reason`` with a machine-readable code. A rule that does not concern the action's kind,
or lacks a field another rule already reports, returns ``None``: every rejection is
reported once, by the rule that owns it. Adding a rule is writing one function and
listing it in ``RULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from services.common.contracts import Action, Portfolio, PositionStatus, Reason, TradeAction
from services.common.settings import TradingLimits

OPENS = frozenset({TradeAction.BUY, TradeAction.SELL})


@dataclass(frozen=True)
class Prior:
    """An action met earlier in the same decision, and whether it was approved."""

    action: Action
    approved: bool


@dataclass(frozen=True)
class ActionContext:
    """Everything a rule may look at to judge one action of a decision."""

    action: Action
    portfolio: Portfolio
    limits: TradingLimits
    symbols: frozenset[str]
    earlier: tuple[Prior, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.action.action in OPENS

    @property
    def open_symbols(self) -> frozenset[str]:
        return frozenset(
            p.symbol for p in self.portfolio.positions if p.status == PositionStatus.OPEN
        )

    @property
    def approved_opens(self) -> tuple[Action, ...]:
        """Opens approved earlier in this decision: they will consume slots and balance."""
        return tuple(p.action for p in self.earlier if p.approved and p.action.action in OPENS)


Rule = Callable[[ActionContext], Reason | None]


def opening_cost(margin: Decimal, leverage: int, limits: TradingLimits) -> Decimal:
    """Margin locked plus the taker fee on the notional (margin x leverage)."""
    return margin + margin * leverage * limits.taker_fee_rate


# ---------------------------------------------------------------- rules


def missing_field(ctx: ActionContext) -> Reason | None:
    a = ctx.action
    if ctx.is_open:
        needed = {"symbol": a.symbol, "margin_usd": a.margin_usd, "leverage": a.leverage}
    elif a.action == TradeAction.CLOSE:
        needed = {"symbol": a.symbol}
    else:
        return None
    missing = [name for name, value in needed.items() if value is None]
    if not missing:
        return None
    return Reason(code="missing_field", message=f"{a.action} needs {', '.join(missing)}")


def unknown_symbol(ctx: ActionContext) -> Reason | None:
    # Only opens: a position on a symbol later dropped from the universe must stay closable.
    symbol = ctx.action.symbol
    if not ctx.is_open or symbol is None or symbol in ctx.symbols:
        return None
    return Reason(
        code="unknown_symbol",
        message=f"{symbol} is not traded here (symbols: {', '.join(sorted(ctx.symbols))})",
    )


def duplicate_symbol(ctx: ActionContext) -> Reason | None:
    symbol = ctx.action.symbol
    if symbol is None or not any(p.action.symbol == symbol for p in ctx.earlier):
        return None
    return Reason(
        code="duplicate_symbol", message=f"{symbol} already has an action in this decision"
    )


def margin_out_of_range(ctx: ActionContext) -> Reason | None:
    margin = ctx.action.margin_usd
    if not ctx.is_open or margin is None:
        return None
    low, high = ctx.limits.min_margin_usd, ctx.limits.max_margin_usd
    if low <= margin <= high:
        return None
    return Reason(
        code="margin_out_of_range", message=f"margin {margin} USD is outside [{low}, {high}]"
    )


def leverage_out_of_range(ctx: ActionContext) -> Reason | None:
    leverage = ctx.action.leverage
    if not ctx.is_open or leverage is None:
        return None
    low, high = ctx.limits.min_leverage, ctx.limits.max_leverage
    if low <= leverage <= high:
        return None
    return Reason(
        code="leverage_out_of_range", message=f"leverage {leverage}x is outside [{low}, {high}]"
    )


def position_already_open(ctx: ActionContext) -> Reason | None:
    symbol = ctx.action.symbol
    if not ctx.is_open or symbol is None or symbol not in ctx.open_symbols:
        return None
    return Reason(
        code="position_already_open",
        message=f"a {symbol} position is already open (no pyramiding; CLOSE it first)",
    )


def too_many_positions(ctx: ActionContext) -> Reason | None:
    if not ctx.is_open:
        return None
    held = len(ctx.open_symbols) + len(ctx.approved_opens)
    if held < ctx.limits.max_open_positions:
        return None
    return Reason(
        code="too_many_positions",
        message=f"{held} positions open or opening; at most {ctx.limits.max_open_positions}",
    )


def insufficient_balance(ctx: ActionContext) -> Reason | None:
    a = ctx.action
    if not ctx.is_open or a.margin_usd is None or a.leverage is None:
        return None
    committed = sum(
        (
            opening_cost(o.margin_usd, o.leverage, ctx.limits)
            for o in ctx.approved_opens
            if o.margin_usd is not None and o.leverage is not None
        ),
        Decimal(0),
    )
    available = ctx.portfolio.account.balance - committed
    needed = opening_cost(a.margin_usd, a.leverage, ctx.limits)
    if needed <= available:
        return None
    return Reason(
        code="insufficient_balance",
        message=f"needs {needed} USD (margin + opening fee), {available} USD available",
    )


def no_open_position(ctx: ActionContext) -> Reason | None:
    symbol = ctx.action.symbol
    if ctx.action.action != TradeAction.CLOSE or symbol is None or symbol in ctx.open_symbols:
        return None
    return Reason(code="no_open_position", message=f"no open {symbol} position to close")


RULES: tuple[Rule, ...] = (
    missing_field,
    unknown_symbol,
    duplicate_symbol,
    margin_out_of_range,
    leverage_out_of_range,
    position_already_open,
    too_many_positions,
    insufficient_balance,
    no_open_position,
)


def judge(ctx: ActionContext, rules: tuple[Rule, ...] = RULES) -> tuple[Reason, ...]:
    """Every objection the rules raise against one action; empty means approved."""
    if ctx.action.action == TradeAction.HOLD:
        return ()
    return tuple(reason for rule in rules if (reason := rule(ctx)) is not None)
