"""The instrument table: per-symbol trading filters and the first maintenance-margin tier.

Risk and ledger size and check positions with it. The defaults follow Binance USD-M's
first leverage bracket (maintenance rate, maintenance amount) and tick sizes; step sizes
and the minimum notional are finer than Binance's, because an arena account trades
$10-$300 notionals that Binance's BTC step (0.001 BTC, about $95) could not express.
Override any of it with a TOML file (``ARENA_INSTRUMENTS_FILE``)::

    [BTCUSDT]
    step_size = "0.001"
    maintenance_margin_rate = "0.004"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path


class InstrumentError(ValueError):
    """An instruments file that cannot be used (unknown key, non-positive number)."""


@dataclass(frozen=True)
class Instrument:
    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal
    maintenance_margin_rate: Decimal
    maintenance_amount: Decimal = Decimal(0)

    def round_quantity(self, quantity: Decimal) -> Decimal:
        """Round down to the step size: an order never buys more than was paid for."""
        return (quantity / self.step_size).to_integral_value(ROUND_DOWN) * self.step_size

    def liquidation_price(
        self, *, long: bool, entry_price: Decimal, quantity: Decimal, margin: Decimal
    ) -> Decimal:
        """This symbol's first-tier liquidation price (see ``liquidation_price``)."""
        return liquidation_price(
            long=long,
            entry_price=entry_price,
            quantity=quantity,
            margin=margin,
            maintenance_margin_rate=self.maintenance_margin_rate,
            maintenance_amount=self.maintenance_amount,
        )


# The ledger stores the liquidation price at this precision; risk checks stops against
# the very same number, so both must round it here and only here.
LIQUIDATION_PRICE_STEP = Decimal("0.00000001")


def liquidation_price(
    *,
    long: bool,
    entry_price: Decimal,
    quantity: Decimal,
    margin: Decimal,
    maintenance_margin_rate: Decimal,
    maintenance_amount: Decimal = Decimal(0),
) -> Decimal:
    """Binance's isolated-margin liquidation price for one position (one-way mode).

    LP = (WB + cum - s x Q x EP) / (Q x MMR - s x Q), with WB the isolated margin, cum
    the tier's maintenance amount and s = 1 for a long, -1 for a short: the price where
    margin + PnL equals the maintenance margin (rate x price x quantity - amount).
    """
    s = 1 if long else -1
    price = (margin + maintenance_amount - s * quantity * entry_price) / (
        quantity * maintenance_margin_rate - s * quantity
    )
    return max(price, Decimal(0)).quantize(LIQUIDATION_PRICE_STEP, rounding=ROUND_HALF_EVEN)


def _instrument(
    symbol: str, tick: str, step: str, min_notional: str, mmr: str, *, amount: str = "0"
) -> Instrument:
    return Instrument(
        symbol, Decimal(tick), Decimal(step), Decimal(min_notional), Decimal(mmr), Decimal(amount)
    )


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    _instrument("BTCUSDT", "0.1", "0.00001", "5", "0.004"),
    _instrument("ETHUSDT", "0.01", "0.0001", "5", "0.004"),
    _instrument("SOLUSDT", "0.01", "0.001", "5", "0.005"),
    _instrument("BNBUSDT", "0.01", "0.001", "5", "0.005"),
    _instrument("XRPUSDT", "0.0001", "0.1", "5", "0.005"),
    _instrument("DOGEUSDT", "0.00001", "1", "5", "0.005"),
)
# A symbol configured in ARENA_SYMBOLS but absent from the table still trades, finely.
GENERIC = _instrument("*", "0.00000001", "0.00000001", "5", "0.005")

_DECIMAL_FIELDS = tuple(f.name for f in fields(Instrument) if f.name != "symbol")


class InstrumentTable:
    """Look-up by symbol; unknown symbols get the generic instrument under their name."""

    def __init__(self, instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS) -> None:
        self._by_symbol = {i.symbol: i for i in instruments}

    def __getitem__(self, symbol: str) -> Instrument:
        found = self._by_symbol.get(symbol)
        return found if found is not None else replace(GENERIC, symbol=symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_symbol))

    def overridden(self, overrides: Mapping[str, Mapping[str, object]]) -> InstrumentTable:
        """A copy with ``{symbol: {field: value}}`` applied (new symbols start generic)."""
        table = dict(self._by_symbol)
        for symbol, values in overrides.items():
            unknown = set(values) - set(_DECIMAL_FIELDS)
            if unknown:
                raise InstrumentError(
                    f"{symbol}: unknown instrument field(s) {sorted(unknown)}; "
                    f"known: {', '.join(_DECIMAL_FIELDS)}"
                )
            changes = {name: _positive(symbol, name, value) for name, value in values.items()}
            table[symbol] = replace(self[symbol], **changes)  # type: ignore[arg-type]
        return InstrumentTable(table.values())


def _positive(symbol: str, name: str, value: object) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InstrumentError(f"{symbol}.{name}: {value!r} is not a number") from exc
    if number < 0 or (number == 0 and name != "maintenance_amount"):
        raise InstrumentError(f"{symbol}.{name} must be positive, got {value!r}")
    return number


def load_instruments(path: Path | None) -> InstrumentTable:
    """The default table, with the overrides of ``path`` (a TOML file) when given."""
    table = InstrumentTable()
    if path is None:
        return table
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InstrumentError(f"cannot read instruments file {path}: {exc}") from exc
    if not all(isinstance(v, dict) for v in data.values()):
        raise InstrumentError(f"{path}: every top-level entry must be a [SYMBOL] table")
    return table.overridden(data)


def opening_cost(
    instrument: Instrument,
    margin: Decimal,
    leverage: int,
    price: Decimal | None,
    fee_rate: Decimal,
) -> Decimal:
    """What opening a position takes from the balance: the margin plus the taker fee.

    The ledger charges the fee on the notional actually bought (the quantity rounded down
    to the instrument's step, times the price); risk and the baselines must count the same.
    Without a (positive) price the unrounded notional ``margin x leverage`` stands in: an
    upper bound, since rounding down only ever buys less.
    """
    notional = margin * leverage
    if price is not None and price > 0:
        notional = instrument.round_quantity(notional / price) * price
    return margin + notional * fee_rate


def can_afford(balance: Decimal, cost: Decimal) -> bool:
    """Whether ``balance`` pays for an open costing ``cost`` (margin plus opening fee).

    The one test of affordability: risk judges a decision with it, the ledger judges again
    what it applies, and the baselines size their opens by it. Spending the whole balance
    is allowed; a balance already committed to earlier opens is not counted.
    """
    return cost <= balance
