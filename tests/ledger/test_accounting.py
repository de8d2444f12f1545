"""The accounting formulas on hand-worked numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.contracts import PositionSide
from services.ledger.accounting import (
    AccountingError,
    Book,
    close_position,
    open_position,
    return_pct,
    unrealized_pnl,
    win_rate,
)

FEE = Decimal("0.0005")
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def test_open_sizes_the_position_and_charges_the_fee_on_what_was_bought() -> None:
    # $10 x 3 = $30 of BTC at 95,000: 0.000315789... rounds DOWN to 0.00031578.
    opening = open_position(LONG, Decimal(95000), Decimal(10), 3, fee_rate=FEE)
    assert opening.quantity == Decimal("0.00031578")
    assert opening.notional == Decimal("29.99910")
    assert opening.fee == Decimal("0.014999550")


def test_close_books_realized_pnl_and_the_closing_fee() -> None:
    qty = Decimal("0.00031578")
    win = close_position(LONG, Decimal(95000), qty, Decimal(10), Decimal(96000), fee_rate=FEE)
    assert win.realized_pnl == Decimal("0.31578")
    assert win.fee == Decimal("0.015157440")
    assert win.pnl_percentage == Decimal("3.1578")
    assert win.is_win
    loss = close_position(SHORT, Decimal(95000), qty, Decimal(10), Decimal(96000), fee_rate=FEE)
    assert loss.realized_pnl == Decimal("-0.31578")
    assert not loss.is_win


def test_a_round_trip_moves_the_balance_by_pnl_minus_both_fees() -> None:
    book = Book(balance=Decimal(100))
    opening = open_position(LONG, Decimal(95000), Decimal(10), 3, fee_rate=FEE)
    book = book.opened(opening)
    assert book.balance == Decimal("89.985000450")
    assert (book.margin_used, book.open_positions, book.total_trades) == (Decimal(10), 1, 1)
    assert book.equity == Decimal("99.985000450")

    book = book.marked(Decimal("0.2"))
    assert book.equity == Decimal("100.185000450")
    assert book.total_pnl == Decimal("0.185000450")

    closing = close_position(
        LONG, opening.entry_price, opening.quantity, opening.margin, Decimal(96000), fee_rate=FEE
    )
    book = book.closed(opening.margin, Decimal("0.2"), closing)
    # 100 - 10 - 0.01499955 + 10 + 0.31578 - 0.01515744
    assert book.balance == Decimal("100.285623010")
    assert (book.margin_used, book.unrealized_pnl, book.open_positions) == (
        Decimal(0),
        Decimal(0),
        0,
    )
    assert (book.total_trades, book.winning_trades, book.losing_trades) == (2, 1, 0)
    assert book.total_fees == Decimal("0.030156990")
    assert book.equity == Decimal(100) + book.total_pnl


def test_unrealized_pnl_by_side() -> None:
    assert unrealized_pnl(LONG, Decimal(100), Decimal(110), Decimal(2)) == Decimal(20)
    assert unrealized_pnl(SHORT, Decimal(100), Decimal(110), Decimal(2)) == Decimal(-20)


def test_open_computes_the_liquidation_price() -> None:
    # 10x long of 1 unit at 100 with $10 margin: (100 - 10) / 0.996
    opening = open_position(LONG, Decimal(100), Decimal(10), 10, fee_rate=FEE)
    assert opening.liquidation_price == Decimal("90.36144578")


def test_an_open_that_buys_nothing_is_refused() -> None:
    with pytest.raises(AccountingError):
        open_position(LONG, Decimal(10) ** 12, Decimal("0.001"), 1, fee_rate=FEE)
    with pytest.raises(AccountingError):
        open_position(LONG, Decimal(0), Decimal(10), 1, fee_rate=FEE)


def test_affordability_includes_the_fee() -> None:
    opening = open_position(LONG, Decimal(100), Decimal(10), 2, fee_rate=FEE)  # fee 0.01
    assert Book(balance=Decimal("10.01")).can_afford(opening)
    assert not Book(balance=Decimal("10.009")).can_afford(opening)


def test_leaderboard_ratios() -> None:
    assert return_pct(Decimal(110), Decimal(100)) == Decimal("10.0000")
    assert return_pct(Decimal("99.5"), Decimal(100)) == Decimal("-0.5000")
    assert win_rate(1, 3) == Decimal("25.0000")
    assert win_rate(0, 0) == Decimal(0)
