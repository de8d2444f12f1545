"""Hand-worked checks of the futures formulas, the instrument table and the hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.contracts import PositionSide
from services.common.funding import funding_times, last_funding_time
from services.common.instruments import (
    InstrumentError,
    InstrumentTable,
    liquidation_price,
    load_instruments,
)
from services.ledger import chain, stats
from services.ledger.accounting import (
    EXIT_LIQUIDATION,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    Book,
    funding_payment,
    liquidation_closing,
    open_position,
    triggered_exit,
)

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
CENT = Decimal("0.01")


def worked_example(*, long: bool, maintenance_amount: Decimal = Decimal(0)) -> Decimal:
    """0.2 BTC at 50,000 with 1,000 USDT isolated margin at a 0.4 % rate."""
    return liquidation_price(
        long=long,
        entry_price=Decimal(50000),
        quantity=Decimal("0.2"),
        margin=Decimal(1000),
        maintenance_margin_rate=Decimal("0.004"),
        maintenance_amount=maintenance_amount,
    )


def test_the_issue_worked_liquidation_example() -> None:
    assert worked_example(long=True).quantize(CENT) == Decimal("45180.72")
    assert worked_example(long=False).quantize(CENT) == Decimal("54780.88")


def test_the_maintenance_amount_moves_the_liquidation_price_away_from_entry() -> None:
    # cum = 50 USDT lowers the maintenance margin: the long liquidates
    # 50 / (0.2 x 0.996) = 251.00 lower.
    moved = worked_example(long=True, maintenance_amount=Decimal(50)) - worked_example(long=True)
    assert moved.quantize(CENT) == Decimal("-251.00")


def test_open_rounds_the_quantity_down_to_the_instrument_step() -> None:
    btc = InstrumentTable()["BTCUSDT"]
    opening = open_position(
        LONG,
        Decimal(95000),
        Decimal(10),
        3,
        fee_rate=Decimal("0.0005"),
        quantity_step=btc.step_size,
        maintenance_margin_rate=btc.maintenance_margin_rate,
    )
    assert opening.quantity == Decimal("0.00031")
    assert opening.fee == Decimal("0.014725")  # 0.05 % of 95,000 x 0.00031


@pytest.mark.parametrize(
    ("side", "high", "low", "expected"),
    [
        # A long: the bar touches stop (94) and target (110): the stop, worse, fills.
        (LONG, Decimal(111), Decimal(93), (EXIT_STOP_LOSS, Decimal(94))),
        # Down through the liquidation price too: liquidation is worse still.
        (LONG, Decimal(111), Decimal(80), (EXIT_LIQUIDATION, Decimal(90))),
        (LONG, Decimal(110), Decimal(95), (EXIT_TAKE_PROFIT, Decimal(110))),
        (LONG, Decimal("109.99"), Decimal("94.01"), None),
        # A short mirrors it: adverse is the high.
        (SHORT, Decimal(107), Decimal(89), (EXIT_STOP_LOSS, Decimal(106))),
        (SHORT, Decimal(111), Decimal(89), (EXIT_LIQUIDATION, Decimal(110))),
        (SHORT, Decimal(105), Decimal(90), (EXIT_TAKE_PROFIT, Decimal(90))),
    ],
)
def test_a_bar_fires_the_worse_exit_first(
    side: PositionSide, high: Decimal, low: Decimal, expected: tuple[str, Decimal] | None
) -> None:
    if side is LONG:
        levels = {"liquidation": Decimal(90), "stop_loss": Decimal(94), "take_profit": Decimal(110)}
    else:
        levels = {
            "liquidation": Decimal(110),
            "stop_loss": Decimal(106),
            "take_profit": Decimal(90),
        }
    fired = triggered_exit(side, high, low, **levels)
    assert (None if fired is None else (fired.reason, fired.price)) == expected


def test_a_liquidation_loses_the_margin_and_no_more() -> None:
    book = Book(balance=Decimal(70), margin_used=Decimal(30), open_positions=1, total_trades=1)
    after = book.closed(Decimal(30), Decimal(-25), liquidation_closing(Decimal(30), Decimal(90)))
    assert (after.balance, after.margin_used, after.realized_pnl) == (
        Decimal(70),
        Decimal(0),
        Decimal(-30),
    )
    assert after.losing_trades == 1


def test_funding_longs_pay_a_positive_rate_and_shorts_a_negative_one() -> None:
    mark, qty = Decimal(50000), Decimal("0.01")
    assert funding_payment(LONG, mark, qty, Decimal("0.0001")) == Decimal("0.05")
    assert funding_payment(SHORT, mark, qty, Decimal("0.0001")) == Decimal("-0.05")
    assert funding_payment(SHORT, mark, qty, Decimal("-0.0002")) == Decimal("0.1")
    book = Book(balance=Decimal(10)).funded(Decimal("0.05"))
    assert (book.balance, book.total_funding, book.total_pnl) == (
        Decimal("9.95"),
        Decimal("0.05"),
        Decimal("-0.05"),
    )


def test_funding_times_are_00_08_and_16_utc() -> None:
    at = datetime(2025, 3, 1, 15, 59, 59, tzinfo=UTC)
    assert last_funding_time(at) == datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert last_funding_time(at.replace(hour=16, minute=0, second=0)) == at.replace(
        hour=16, minute=0, second=0
    )
    assert last_funding_time(at.replace(hour=7)).hour == 0


def test_instrument_overrides_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "instruments.toml"
    path.write_text('[BTCUSDT]\nstep_size = "0.001"\n[NEWUSDT]\ntick_size = "0.5"\n')
    table = load_instruments(path)
    assert table["BTCUSDT"].step_size == Decimal("0.001")
    assert table["BTCUSDT"].maintenance_margin_rate == Decimal("0.004")  # kept
    assert table["NEWUSDT"].tick_size == Decimal("0.5")
    assert table["BTCUSDT"].round_quantity(Decimal("0.0039")) == Decimal("0.003")
    path.write_text('[BTCUSDT]\nstep = "0.001"\n')
    with pytest.raises(InstrumentError, match="unknown instrument field"):
        load_instruments(path)
    path.write_text('[BTCUSDT]\nstep_size = "0"\n')
    with pytest.raises(InstrumentError, match="must be positive"):
        load_instruments(path)


def _row(n: int, reasoning: str = "r") -> chain.DecisionContent:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    return chain.DecisionContent(
        decision_id=f"c{n}:a",
        cycle_id=f"c{n}",
        agent_id="a",
        decision={"reasoning": reasoning, "confidence": 0.7},
        results=[{"index": 0, "outcome": "held"}],
        applied_at=at,
        columns=chain.columns(
            actions=[],
            reasoning=reasoning,
            model="m",
            prompt_sha256=None,
            error=None,
            decided_at=at,
        ),
    )


def test_the_hash_chain_is_deterministic_and_names_the_altered_row() -> None:
    rows = [_row(1), _row(2), _row(3)]
    links = []
    prev = chain.GENESIS
    for seq, row in enumerate(rows, start=1):
        link = chain.link(seq, prev, row)
        links.append((link.seq, link.prev_hash, link.hash, row))
        prev = link.hash
    assert chain.link(1, chain.GENESIS, _row(1)).hash == links[0][2]
    assert chain.check(links, (3, prev)) == []
    tampered = [*links[:1], (*links[1][:3], _row(2, "edited")), *links[2:]]
    assert chain.check(tampered, (3, prev)) == [
        "decision c2:a: hash does not match its content (altered row)"
    ]
    assert any("deleted" in p for p in chain.check(links[:2], (3, prev)))


def test_drawdown_and_sharpe_of_a_hand_worked_curve() -> None:
    curve = [Decimal(100), Decimal(110), Decimal(99), Decimal(121)]
    assert stats.max_drawdown_pct(curve) == Decimal("10.0000")  # 110 -> 99
    # returns 0.1, -0.1, 0.2222...: mean 0.074074, sample sd 0.162668
    assert stats.sharpe_ratio(curve) == Decimal("0.4554")
    assert stats.sharpe_ratio([Decimal(100), Decimal(100)]) is None
    assert stats.net_return_pct(Decimal(110), Decimal(2), Decimal(100)) == Decimal("8.0000")


def test_funding_times_lists_each_time_between_two_instants_inclusive() -> None:
    start = datetime(2025, 3, 1, 1, tzinfo=UTC)
    assert funding_times(start, start.replace(hour=7)) == []
    assert funding_times(start, datetime(2025, 3, 2, 0, 0, tzinfo=UTC)) == [
        datetime(2025, 3, 1, 8, tzinfo=UTC),
        datetime(2025, 3, 1, 16, tzinfo=UTC),
        datetime(2025, 3, 2, 0, tzinfo=UTC),
    ]
    eight = datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert funding_times(eight, eight) == [eight]
