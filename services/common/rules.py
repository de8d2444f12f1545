"""The trading rules: pure functions, no I/O. Risk judges every decision with them; the
ledger judges again what it applies, with its own books, so a forged or stale approval
cannot break a limit.

Each rule looks at one action in its context and returns ``None`` (no objection) or a
``Reason`` with a machine-readable code. A rule that does not concern the action's kind,
or lacks a field another rule already reports, returns ``None``: every rejection is
reported once, by the rule that owns it. Adding a rule is writing one function and
listing it in ``RULES``; marking it ``@concerns(...)`` with the kinds of action it judges
spares calling it for the others (it must still answer ``None`` for them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, TypeVar

from services.common.contracts import Action, Portfolio, PositionStatus, Reason, TradeAction
from services.common.instruments import Instrument, InstrumentTable, can_afford, opening_cost
from services.common.once import once
from services.common.settings import TradingLimits

OPENS = frozenset({TradeAction.BUY, TradeAction.SELL})
ZERO = Decimal(0)
N = TypeVar("N", Decimal, int)


class Prior(NamedTuple):
    """An action met earlier in the same decision, and whether it was approved."""

    action: Action
    approved: bool


@dataclass(frozen=True, init=False)
class ActionContext:
    """Everything a rule may look at to judge one action of a decision.

    The derived figures are computed once per context (every rule reads them), which
    keeps a decision's validation in tens of microseconds; the context never changes.
    """

    action: Action
    portfolio: Portfolio
    limits: TradingLimits
    symbols: frozenset[str]
    earlier: tuple[Prior, ...] = ()
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    """The cycle's snapshot prices; rules that need a price pass when it is unknown."""
    instruments: InstrumentTable = field(default_factory=InstrumentTable)
    decided_at: datetime | None = None
    deadline: datetime | None = None

    def __init__(
        self,
        action: Action,
        portfolio: Portfolio,
        limits: TradingLimits,
        symbols: frozenset[str],
        *,
        earlier: tuple[Prior, ...] = (),
        prices: Mapping[str, Decimal] | None = None,
        instruments: InstrumentTable | None = None,
        decided_at: datetime | None = None,
        deadline: datetime | None = None,
    ) -> None:
        # The frozen dataclass's own __init__ sets each field through object.__setattr__,
        # a third of the cost of judging an action; filling __dict__ is the same, faster.
        fields = self.__dict__
        fields["action"] = action
        fields["portfolio"] = portfolio
        fields["limits"] = limits
        fields["symbols"] = symbols
        fields["earlier"] = earlier
        fields["prices"] = {} if prices is None else prices
        fields["instruments"] = InstrumentTable() if instruments is None else instruments
        fields["decided_at"] = decided_at
        fields["deadline"] = deadline

    @once
    def price(self) -> Decimal | None:
        symbol = self.action.symbol
        return None if symbol is None else self.prices.get(symbol)

    @once
    def instrument(self) -> Instrument | None:
        symbol = self.action.symbol
        return None if symbol is None else self.instruments[symbol]

    @once
    def is_open(self) -> bool:
        return self.action.action in OPENS

    @once
    def open_symbols(self) -> frozenset[str]:
        return frozenset(
            p.symbol for p in self.portfolio.positions if p.status == PositionStatus.OPEN
        )

    @once
    def approved_opens(self) -> tuple[Action, ...]:
        """Opens approved earlier in this decision: they will consume slots and balance."""
        return tuple(p.action for p in self.earlier if p.approved and p.action.action in OPENS)

    @once
    def sized(self) -> tuple[Decimal, Decimal, Instrument] | None:
        """(price, quantity after rounding, instrument) of an open, when the price is known."""
        return _size(self)


Rule = Callable[[ActionContext], Reason | None]


def concerns(*kinds: TradeAction) -> Callable[[Rule], Rule]:
    """Marks a rule that objects only to these kinds of action: ``judge`` calls it for
    them alone. The rule must still return ``None`` for any other kind."""

    def mark(rule: Rule) -> Rule:
        rule.kinds = frozenset(kinds)  # type: ignore[attr-defined]
        return rule

    return mark


@functools.lru_cache(maxsize=128)
def applicable(rules: tuple[Rule, ...], kind: TradeAction) -> tuple[Rule, ...]:
    """The rules that may object to an action of this kind, in their order."""
    return tuple(rule for rule in rules if kind in getattr(rule, "kinds", (kind,)))


def cost_of(ctx: ActionContext, action: Action) -> Decimal | None:
    """What opening ``action`` takes from the balance, as the ledger will charge it."""
    a = action
    if a.symbol is None or a.margin_usd is None or a.leverage is None:
        return None
    return opening_cost(
        ctx.instruments[a.symbol],
        a.margin_usd,
        a.leverage,
        ctx.prices.get(a.symbol),
        ctx.limits.taker_fee_rate,
    )


# ---------------------------------------------------------------- rules


def missing_field(ctx: ActionContext) -> Reason | None:
    a = ctx.action
    if ctx.is_open:
        if a.symbol is not None and a.margin_usd is not None and a.leverage is not None:
            return None
        needed = {"symbol": a.symbol, "margin_usd": a.margin_usd, "leverage": a.leverage}
    elif a.action == TradeAction.CLOSE:
        if a.symbol is not None:
            return None
        needed = {"symbol": a.symbol}
    else:
        return None
    missing = [name for name, value in needed.items() if value is None]
    return Reason(code="missing_field", message=f"{a.action} needs {', '.join(missing)}")


@concerns(*OPENS)
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


def _open_outside(
    ctx: ActionContext, value: N | None, low: N, high: N, *, code: str, shown: str
) -> Reason | None:
    """A reason when an open's ``value`` is outside ``[low, high]``; ``shown`` formats it.
    No value (``missing_field`` reports it) or not an open: no objection."""
    if not ctx.is_open or value is None or low <= value <= high:
        return None
    return Reason(code=code, message=f"{shown.format(value)} is outside [{low}, {high}]")


@concerns(*OPENS)
def margin_out_of_range(ctx: ActionContext) -> Reason | None:
    low, high = ctx.limits.min_margin_usd, ctx.limits.max_margin_usd
    return _open_outside(
        ctx, ctx.action.margin_usd, low, high, code="margin_out_of_range", shown="margin {} USD"
    )


@concerns(*OPENS)
def leverage_out_of_range(ctx: ActionContext) -> Reason | None:
    low, high = ctx.limits.min_leverage, ctx.limits.max_leverage
    return _open_outside(
        ctx, ctx.action.leverage, low, high, code="leverage_out_of_range", shown="leverage {}x"
    )


@concerns(*OPENS)
def position_already_open(ctx: ActionContext) -> Reason | None:
    symbol = ctx.action.symbol
    if not ctx.is_open or symbol is None or symbol not in ctx.open_symbols:
        return None
    return Reason(
        code="position_already_open",
        message=f"a {symbol} position is already open (no pyramiding; CLOSE it first)",
    )


@concerns(*OPENS)
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


@concerns(*OPENS)
def insufficient_balance(ctx: ActionContext) -> Reason | None:
    a = ctx.action
    if not ctx.is_open or a.margin_usd is None or a.leverage is None:
        return None
    committed = ZERO
    for o in ctx.approved_opens:
        if (cost := cost_of(ctx, o)) is not None:
            committed += cost
    available = ctx.portfolio.account.balance - committed
    needed = cost_of(ctx, a)
    if needed is None or can_afford(available, needed):
        return None
    return Reason(
        code="insufficient_balance",
        message=f"needs {needed} USD (margin + opening fee), {available} USD available",
    )


@concerns(TradeAction.CLOSE)
def no_open_position(ctx: ActionContext) -> Reason | None:
    symbol = ctx.action.symbol
    if ctx.action.action != TradeAction.CLOSE or symbol is None or symbol in ctx.open_symbols:
        return None
    return Reason(code="no_open_position", message=f"no open {symbol} position to close")


def past_deadline(ctx: ActionContext) -> Reason | None:
    if ctx.decided_at is None or ctx.deadline is None or ctx.decided_at <= ctx.deadline:
        return None
    late = (ctx.decided_at - ctx.deadline).total_seconds()
    return Reason(
        code="past_deadline",
        message=f"decided {late:.1f} s after the cycle's deadline {ctx.deadline.isoformat()}",
    )


@concerns(*OPENS)
def margin_utilisation_exceeded(ctx: ActionContext) -> Reason | None:
    a = ctx.action
    if not ctx.is_open or a.margin_usd is None:
        return None
    account = ctx.portfolio.account
    pending = ZERO
    for o in ctx.approved_opens:
        pending += o.margin_usd or ZERO
    after = account.margin_used + pending + a.margin_usd
    cap = ctx.limits.max_margin_utilisation * account.equity
    if after <= cap:
        return None
    return Reason(
        code="margin_utilisation_exceeded",
        message=f"margin in use would be {after} USD, above "
        f"{ctx.limits.max_margin_utilisation * 100}% of equity ({cap} USD)",
    )


def _sized(ctx: ActionContext) -> tuple[Decimal, Decimal, Instrument] | None:
    """(price, quantity after rounding, instrument) of an open, when the price is known."""
    return ctx.sized


def _size(ctx: ActionContext) -> tuple[Decimal, Decimal, Instrument] | None:
    a, price, instrument = ctx.action, ctx.price, ctx.instrument
    if not ctx.is_open or a.margin_usd is None or a.leverage is None or a.leverage < 1:
        return None
    if price is None or price <= 0 or instrument is None:
        return None
    return price, instrument.round_quantity(a.margin_usd * a.leverage / price), instrument


@concerns(*OPENS)
def below_min_notional(ctx: ActionContext) -> Reason | None:
    sized = _sized(ctx)
    if sized is None:
        return None
    price, quantity, instrument = sized
    notional = quantity * price
    if notional >= instrument.min_notional:
        return None
    return Reason(
        code="below_min_notional",
        message=f"{quantity} {instrument.symbol} (step {instrument.step_size}) is worth "
        f"{notional} USD, below the minimum notional {instrument.min_notional}",
    )


def _protective_level_problem(ctx: ActionContext, *, stop: bool) -> Reason | None:
    a = ctx.action
    level = a.stop_loss if stop else a.take_profit
    sized = _sized(ctx)
    if level is None or sized is None or a.margin_usd is None:
        return None
    price, quantity, instrument = sized
    long = a.action == TradeAction.BUY
    name, code = (
        ("stop loss", "stop_loss_invalid") if stop else ("take profit", "take_profit_invalid")
    )
    # A long's stop is below the entry and its target above; a short's the other way round.
    below_wanted = long == stop
    if (level >= price) if below_wanted else (level <= price):
        side = "below" if below_wanted else "above"
        return Reason(
            code=code,
            message=f"{name} {level} must be {side} the entry {price} for a "
            f"{'long' if long else 'short'}",
        )
    if stop and quantity > 0:
        liquidation = instrument.liquidation_price(
            long=long, entry_price=price, quantity=quantity, margin=a.margin_usd
        )
        if (level <= liquidation) if long else (level >= liquidation):
            return Reason(
                code=code,
                message=f"stop loss {level} is beyond the liquidation price "
                f"{liquidation.quantize(instrument.tick_size)}: it would never fill",
            )
    return None


@concerns(*OPENS)
def stop_loss_invalid(ctx: ActionContext) -> Reason | None:
    return _protective_level_problem(ctx, stop=True)


@concerns(*OPENS)
def take_profit_invalid(ctx: ActionContext) -> Reason | None:
    return _protective_level_problem(ctx, stop=False)


RULES: tuple[Rule, ...] = (
    past_deadline,
    missing_field,
    unknown_symbol,
    duplicate_symbol,
    margin_out_of_range,
    leverage_out_of_range,
    position_already_open,
    too_many_positions,
    insufficient_balance,
    margin_utilisation_exceeded,
    below_min_notional,
    stop_loss_invalid,
    take_profit_invalid,
    no_open_position,
)


# What the ledger judges again when it applies an approved action: every limit. Lateness
# is the ledger's own call (a cycle that is over takes no trade), so past_deadline is out.
LIMIT_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule is not past_deadline)


def judge(ctx: ActionContext, rules: tuple[Rule, ...] = RULES) -> tuple[Reason, ...]:
    """Every objection the rules raise against one action; empty means approved."""
    kind = ctx.action.action
    if kind == TradeAction.HOLD:
        return ()
    return tuple(reason for rule in applicable(rules, kind) if (reason := rule(ctx)) is not None)
