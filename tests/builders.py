"""Builders of the shared contracts for every test (snapshots, books, decisions, verdicts).

Each takes keyword arguments with plain defaults (one agent, ``momentum``, at ``NOW``), so
a test states only what it is about. Money given as ``str`` or ``int`` becomes ``Decimal``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from services.common.contracts import (
    AccountView,
    Action,
    ActionResult,
    Candle,
    CycleStarted,
    Decision,
    DecisionRecord,
    FundingSettlement,
    Heartbeat,
    Indicators,
    LeaderboardEntry,
    LlmCall,
    MarketSnapshot,
    MarketTick,
    Message,
    Portfolio,
    PositionSide,
    PositionStatus,
    PositionView,
    Reason,
    SchedulerStatus,
    SymbolSnapshot,
    TickPrice,
    TradeAction,
    TradeView,
    Verdict,
)

Money = Decimal | str | int
M = TypeVar("M", bound=Message)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
PRICES = {
    "BTCUSDT": Decimal("50000.0"),
    "ETHUSDT": Decimal("3000.00"),
    "SOLUSDT": Decimal("150.000"),
    "BNBUSDT": Decimal("600.000"),
    "XRPUSDT": Decimal("0.5000"),
    "DOGEUSDT": Decimal("0.080000"),
}


def _money(value: Money | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# --- market ------------------------------------------------------------------------


def symbol_snapshot(
    symbol: str,
    price: Money | None = None,
    *,
    mark: Money | None = None,
    at: datetime = NOW,
    change_pct: Money = 0,
    volume: Money = 1000,
    high: Money | None = None,
    low: Money | None = None,
    candles: tuple[Candle, ...] = (),
    indicators: Indicators | None = None,
    funding: tuple[Money, datetime] | None = None,
) -> SymbolSnapshot:
    """One symbol at ``price`` (its PRICES entry by default); high, low and mark the same;
    ``funding`` is (rate, next funding time), by default 0.0001 four hours on."""
    rate, next_funding = funding or ("0.0001", at + timedelta(hours=4))
    last = PRICES[symbol] if price is None else Decimal(price)
    return SymbolSnapshot(
        symbol=symbol,
        last_price=last,
        mark_price=last if mark is None else Decimal(mark),
        price_change_pct_24h=Decimal(change_pct),
        volume_24h=Decimal(volume),
        high_24h=last if high is None else Decimal(high),
        low_24h=last if low is None else Decimal(low),
        funding_rate=Decimal(rate),
        next_funding_time=next_funding,
        candles=candles,
        indicators=indicators or Indicators(),
    )


def snapshot(
    *symbols: SymbolSnapshot,
    cycle_id: str = "c1",
    at: datetime = NOW,
    deadline: datetime | None = None,
    source: str = "simulator",
    prices: dict[str, Decimal] | None = None,
    marks: dict[str, Decimal] | None = None,
) -> MarketSnapshot:
    """The given symbols; or one per ``prices`` entry (mark prices from ``marks`` where
    given); or every symbol of PRICES."""
    if not symbols and prices is not None:
        marks = marks or {}
        symbols = tuple(symbol_snapshot(s, p, mark=marks.get(s), at=at) for s, p in prices.items())
    return MarketSnapshot(
        cycle_id=cycle_id,
        taken_at=at,
        decision_deadline=deadline or at + timedelta(minutes=4),
        source=source,
        symbols=symbols or tuple(symbol_snapshot(s, at=at) for s in PRICES),
    )


def bar(
    symbol: str,
    mark: Money,
    *,
    low: Money,
    high: Money,
    settlement: FundingSettlement | None = None,
) -> TickPrice:
    """One symbol's bar in a tick: its mark (also its last price), low and high."""
    return TickPrice(
        symbol=symbol,
        last_price=Decimal(mark),
        mark_price=Decimal(mark),
        high=Decimal(high),
        low=Decimal(low),
        settlement=settlement,
    )


def tick(tick_id: str, at: datetime, marks: dict[str, Decimal]) -> MarketTick:
    return MarketTick(
        tick_id=tick_id,
        at=at,
        prices=tuple(
            TickPrice(symbol=s, last_price=p, mark_price=p, high=p, low=p) for s, p in marks.items()
        ),
    )


def validated(message: M, **fields: Any) -> M:
    """``message`` with ``fields`` replaced, validated as if it had arrived so."""
    return type(message).model_validate({**message.model_dump(), **fields})


def cycle_started(
    cycle_id: str,
    sequence: int,
    at: datetime,
    agents: tuple[str, ...],
    deadline_s: float = 60,
    *,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
) -> CycleStarted:
    return CycleStarted(
        cycle_id=cycle_id,
        sequence=sequence,
        started_at=at,
        decision_deadline=at + timedelta(seconds=deadline_s),
        symbols=symbols,
        agents=agents,
    )


def disabled_heartbeat(agent_id: str, model: str, reason: str, at: datetime = NOW) -> Heartbeat:
    """A baseline agent's heartbeat saying it is disabled, and why."""
    return Heartbeat(
        agent_id=agent_id,
        display_name=agent_id.title(),
        provider="baseline",
        model=model,
        status="disabled",
        reason=reason,
        at=at,
    )


def scheduler_status(*, paused: bool = False, at: datetime = NOW) -> SchedulerStatus:
    return SchedulerStatus(
        running=True,
        paused=paused,
        source="simulator",
        cycle_seconds=2,
        current_cycle_id=None,
        next_run_at=at,
        cycles_started=4,
        cycles_completed=3,
        cycles_failed=0,
        cycles_skipped=0,
        last_duration_seconds=1.5,
        mean_duration_seconds=1.4,
    )


# --- the ledger's books ----------------------------------------------------------


def account(
    agent_id: str = "momentum",
    *,
    balance: Money = "100",
    unrealized: Money = "0",
    margin_used: Money = "0",
    equity: Money | None = None,
    total_pnl: Money | None = None,
    fees: Money = "0",
    total_trades: int = 0,
    open_positions: int = 0,
    display_name: str | None = None,
    model_name: str = "ema-cross",
) -> AccountView:
    """By default equity = balance + margin used + unrealized, and P&L = equity - 100."""
    balance, unrealized, margin_used = Decimal(balance), Decimal(unrealized), Decimal(margin_used)
    value = balance + margin_used + unrealized if equity is None else Decimal(equity)
    return AccountView(
        agent_id=agent_id,
        display_name=display_name or agent_id,
        provider="baseline",
        model_name=model_name,
        balance=balance,
        margin_used=margin_used,
        equity=value,
        total_pnl=value - 100 if total_pnl is None else Decimal(total_pnl),
        realized_pnl=Decimal(0),
        unrealized_pnl=unrealized,
        total_fees=Decimal(fees),
        total_trades=total_trades,
        winning_trades=0,
        losing_trades=0,
        open_positions=open_positions,
        is_active=True,
    )


def position(
    symbol: str = "BTCUSDT",
    *,
    side: PositionSide = PositionSide.LONG,
    agent_id: str = "momentum",
    position_id: str | None = None,
    entry: Money | None = None,
    current: Money | None = None,
    quantity: Money = 1,
    leverage: int = 2,
    margin: Money = 20,
    unrealized: Money = 0,
    liquidation: Money | None = None,
    stop_loss: Money | None = None,
    take_profit: Money | None = None,
) -> PositionView:
    """An open position at the symbol's PRICES entry (100 for other symbols)."""
    entry_price = PRICES.get(symbol, Decimal(100)) if entry is None else Decimal(entry)
    return PositionView(
        position_id=position_id or f"{agent_id}-{symbol}",
        agent_id=agent_id,
        symbol=symbol,
        side=side,
        status=PositionStatus.OPEN,
        entry_price=entry_price,
        current_price=entry_price if current is None else Decimal(current),
        quantity=Decimal(quantity),
        leverage=leverage,
        margin=Decimal(margin),
        unrealized_pnl=Decimal(unrealized),
        liquidation_price=_money(liquidation),
        stop_loss=_money(stop_loss),
        take_profit=_money(take_profit),
        opened_at=NOW,
    )


def portfolio(
    *positions: PositionView | str,
    agent_id: str = "momentum",
    balance: Money = "100",
    unrealized: Money = "0",
    margin_used: Money | None = None,
    total_trades: int = 0,
) -> Portfolio:
    """Positions given as views or as symbols (opened with :func:`position`).

    The margin used is the positions' margins unless given; ``unrealized`` lifts equity
    above the balance without using margin.
    """
    views = tuple(position(p, agent_id=agent_id) if isinstance(p, str) else p for p in positions)
    used = sum((p.margin for p in views), Decimal(0)) if margin_used is None else margin_used
    return Portfolio(
        account=account(
            agent_id,
            balance=balance,
            unrealized=unrealized,
            margin_used=used,
            total_trades=total_trades,
            open_positions=len(views),
        ),
        positions=views,
    )


def trade(agent_id: str, n: int, *, at: datetime = NOW) -> TradeView:
    """The ``n``-th closed short on ETHUSDT, a take-profit win."""
    return TradeView(
        trade_id=f"t-{agent_id}-{n}",
        agent_id=agent_id,
        position_id=f"p-{agent_id}-{n}",
        cycle_id=f"c-{n}",
        symbol="ETHUSDT",
        action="SELL",
        side=PositionSide.SHORT,
        entry_price=Decimal(3000),
        exit_price=Decimal(2950),
        quantity=Decimal("0.05"),
        realized_pnl=Decimal("2.5"),
        pnl_percentage=Decimal("12.5"),
        fees=Decimal("0.15"),
        exit_reason="take_profit",
        executed_at=at - timedelta(minutes=n),
        closed_at=at,
    )


def agent_figures(agent_id: str, equity: Decimal) -> dict[str, Any]:
    """What the leaderboard and the statistics both show of an agent that has opened one
    position and closed none, from an initial 100."""
    return {
        "agent_id": agent_id,
        "display_name": agent_id.title(),
        "equity": equity,
        "return_pct": equity - Decimal(100),
        "realized_pnl": Decimal(0),
        "unrealized_pnl": Decimal("0.20"),
        "total_fees": Decimal("0.05"),
        "total_trades": 1,
        "win_rate": Decimal(0),
    }


def leaderboard_entry(rank: int, agent_id: str, equity: Decimal) -> LeaderboardEntry:
    return LeaderboardEntry(
        rank=rank,
        **agent_figures(agent_id, equity),
        open_positions=1,
        llm_cost_usd=Decimal("0.01"),
        net_return_pct=equity - Decimal("100.01"),
        parse_failures=1 if agent_id == "random" else 0,
        rejections=2 if agent_id == "random" else 0,
    )


# A successful model call as an agent reports it; a test names only what it varies.
_LLM_CALL: dict[str, Any] = {
    "cycle_id": "c1",
    "provider": "baseline",
    "model": "ema-cross",
    "response_time_ms": 12,
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "estimated_cost": Decimal("0.0001"),
    "success": True,
}


def llm_call(agent: str, call_id: str, at: datetime, **fields: str) -> LlmCall:
    """A successful model call of ``agent`` (``fields`` replace the defaults above)."""
    values = {**_LLM_CALL, "call_id": call_id, "agent_id": agent, "called_at": at, **fields}
    return LlmCall.model_validate(values)


# --- actions, decisions, verdicts --------------------------------------------------


def buy(
    symbol: str = "BTCUSDT",
    margin: Money | None = "20",
    leverage: int | None = 5,
    **levels: Money | float | None,
) -> Action:
    """A BUY; ``levels``: its confidence, stop_loss and take_profit, when given."""
    return _opening(TradeAction.BUY, symbol, margin, leverage, levels)


def sell(
    symbol: str = "BTCUSDT",
    margin: Money = "20",
    leverage: int = 5,
    **levels: Money | float | None,
) -> Action:
    """A SELL; ``levels`` as for :func:`buy`."""
    return _opening(TradeAction.SELL, symbol, margin, leverage, levels)


def _opening(
    side: TradeAction,
    symbol: str,
    margin: Money | None,
    leverage: int | None,
    levels: dict[str, Money | float | None],
) -> Action:
    return Action.model_validate(
        {"action": side, "symbol": symbol, "margin_usd": _money(margin), "leverage": leverage}
        | {k: v for k, v in levels.items() if v is not None}
    )


def close(symbol: str | None = "BTCUSDT") -> Action:
    return Action(action=TradeAction.CLOSE, symbol=symbol)


def hold(symbol: str | None = None) -> Action:
    return Action(action=TradeAction.HOLD, symbol=symbol)


def decision(
    *actions: Action,
    agent_id: str = "momentum",
    cycle_id: str = "c1",
    at: datetime = NOW,
    deadline: datetime | None = None,
    reasoning: str = "because",
    model: str = "ema-cross",
) -> Decision:
    return Decision(
        decision_id=Decision.make_id(cycle_id, agent_id),
        cycle_id=cycle_id,
        agent_id=agent_id,
        decided_at=at,
        decision_deadline=deadline or at,
        actions=actions,
        reasoning=reasoning,
        model=model,
    )


def decision_record(d: Decision) -> DecisionRecord:
    """``d`` as the ledger reports it: every action approved, applied when decided."""
    results = tuple(ActionResult(index=i, action=a, approved=True) for i, a in enumerate(d.actions))
    return DecisionRecord(decision=d, results=results, applied_at=d.decided_at)


def approved(action: Action) -> tuple[Action, tuple[Reason, ...]]:
    return action, ()


def rejected(action: Action, *reasons: tuple[str, str]) -> tuple[Action, tuple[Reason, ...]]:
    return action, tuple(Reason(code=c, message=m) for c, m in reasons)


def verdict(
    cycle_id: str,
    agent: str,
    at: datetime,
    *results: tuple[Action, tuple[Reason, ...]],
    reasoning: str = "because",
) -> Verdict:
    """The risk service's verdict on ``agent``'s decision: one result per (action, reasons)."""
    proposed = decision(
        *(action for action, _ in results),
        agent_id=agent,
        cycle_id=cycle_id,
        at=at,
        deadline=at + timedelta(seconds=60),
        reasoning=reasoning,
        model="test-model",
    )
    return Verdict(
        verdict_id=proposed.decision_id,
        decided_at=at,
        decision=proposed,
        results=tuple(
            ActionResult(index=i, action=action, approved=not reasons, reasons=reasons)
            for i, (action, reasons) in enumerate(results)
        ),
    )
