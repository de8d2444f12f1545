"""Property tests of the pure accounting: random opens, closes, ticks and funding on
several agents keep the books' invariants."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contracts import PositionSide
from services.common.instruments import InstrumentTable
from services.ledger import accounting
from services.ledger.accounting import Book

BTC = InstrumentTable()["BTCUSDT"]
FEE = Decimal("0.0005")
INITIAL = Decimal(100)


@dataclass
class Held:
    opening: accounting.Opening
    unrealized: Decimal = Decimal(0)


prices = st.integers(min_value=40_000, max_value=150_000).map(Decimal)
steps = st.lists(
    st.tuples(
        st.integers(0, 2),  # agent
        st.sampled_from(["open_long", "open_short", "close", "tick", "funding"]),
        prices,
        st.integers(10, 30).map(Decimal),  # margin
        st.integers(1, 10),  # leverage
        st.integers(-30, 30).map(lambda r: Decimal(r) / 10000),  # funding rate
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_random_sequences_keep_the_books_consistent(sequence: list[tuple]) -> None:  # type: ignore[type-arg]
    books = {a: Book(balance=INITIAL) for a in range(3)}
    held: dict[int, Held] = {}
    for agent, kind, price, margin, leverage, rate in sequence:
        book = books[agent]
        position = held.get(agent)
        if kind.startswith("open") and position is None:
            side = PositionSide.LONG if kind == "open_long" else PositionSide.SHORT
            opening = accounting.open_position(
                side, price, margin, leverage, fee_rate=FEE,
                maintenance_margin_rate=BTC.maintenance_margin_rate, quantity_step=BTC.step_size,
            )  # fmt: skip
            if book.can_afford(opening):
                books[agent] = book.opened(opening)
                held[agent] = Held(opening)
        elif kind in ("close", "tick") and position is not None:
            o = position.opening
            fired = accounting.triggered_exit(
                o.side, price, price, liquidation=o.liquidation_price, stop_loss=None,
                take_profit=None,
            )  # fmt: skip
            if fired is not None or kind == "close":
                closing = (
                    accounting.liquidation_closing(o.margin, o.liquidation_price)
                    if fired is not None
                    else accounting.close_position(
                        o.side, o.entry_price, o.quantity, o.margin, price, fee_rate=FEE
                    )
                )
                assert closing.realized_pnl >= -o.margin  # never more than the margin
                books[agent] = book.closed(o.margin, position.unrealized, closing)
                del held[agent]
            else:
                unrealized = accounting.unrealized_pnl(o.side, o.entry_price, price, o.quantity)
                books[agent] = book.marked(book.unrealized_pnl - position.unrealized + unrealized)
                position.unrealized = unrealized
        elif kind == "funding" and position is not None:
            o = position.opening
            amount = accounting.funding_payment(o.side, price, o.quantity, rate)
            books[agent] = book.funded(min(amount, book.balance))

    for agent, book in books.items():
        assert book.balance >= 0
        assert book.equity == (
            INITIAL + book.realized_pnl + book.unrealized_pnl - book.total_fees - book.total_funding
        )
        assert book.total_pnl == book.equity - INITIAL
        assert book.margin_used == (held[agent].opening.margin if agent in held else 0)
