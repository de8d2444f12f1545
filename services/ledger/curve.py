"""An equity curve's max drawdown and Sharpe ratio from summaries of its parts, pure.

A :class:`Segment` sums up consecutive points of one agent's curve (in the ledger, the
snapshots of one hour): first and last value, highest and lowest, the largest fall from
a running peak inside it, and the exact sums of the returns between its points. Folding
the segments in order (:meth:`Curve.extend`) gives the same max drawdown and Sharpe ratio
as :mod:`stats` computes from every point:

- a return is computed from the same two points either way (the last point of one
  segment and the first of the next join them), and the sums are exact, so the grouping
  does not matter;
- a segment entered with a running peak ``P`` adds ``max(fall(P, lowest), largest fall
  inside)`` and hands on ``max(P, highest)`` (see :mod:`thinning` for why), each fall
  computed with the very same expression as :func:`stats.max_drawdown_pct`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.ledger.accounting import HUNDRED, PERCENT_STEP, ZERO
from services.ledger.stats import ReturnSums, returns, sharpe_from_sums


def _fall(peak: Decimal, value: Decimal) -> Decimal:
    return (peak - value) / peak * HUNDRED


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive points of one curve, summed up."""

    points: int
    first: Decimal
    last: Decimal
    highest: Decimal
    lowest: Decimal
    largest_fall: Decimal
    sums: ReturnSums

    @classmethod
    def of(cls, values: Sequence[Decimal]) -> Segment:
        if not values:
            raise ValueError("a segment has at least one point")
        peak = values[0]
        worst = ZERO
        for value in values:
            peak = max(peak, value)
            if peak > 0:
                worst = max(worst, _fall(peak, value))
        return cls(
            points=len(values),
            first=values[0],
            last=values[-1],
            highest=max(values),
            lowest=min(values),
            largest_fall=worst,
            sums=ReturnSums.of(returns(values)),
        )


@dataclass(frozen=True, slots=True)
class Curve:
    """The fold of a curve's segments so far."""

    last: Decimal | None = None
    peak: Decimal | None = None
    worst: Decimal = ZERO
    sums: ReturnSums = field(default_factory=ReturnSums)

    def extend(self, segment: Segment) -> Curve:
        sums = self.sums
        worst = max(self.worst, segment.largest_fall)
        if self.last is not None and self.last > 0:
            sums = sums.add(segment.first / self.last - 1)
        if self.peak is not None and self.peak > 0:
            worst = max(worst, _fall(self.peak, segment.lowest))
        peak = segment.highest if self.peak is None else max(self.peak, segment.highest)
        return Curve(segment.last, peak, worst, sums.merge(segment.sums))

    def extend_all(self, segments: Iterable[Segment]) -> Curve:
        """This curve followed by each of ``segments`` in turn."""
        return functools.reduce(Curve.extend, segments, self)

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> Curve:
        return cls().extend_all(segments)

    @property
    def max_drawdown_pct(self) -> Decimal:
        return self.worst.quantize(PERCENT_STEP)

    @property
    def sharpe_ratio(self) -> Decimal | None:
        return sharpe_from_sums(self.sums)


def split(values: Sequence[Decimal], cuts: Sequence[int]) -> list[Segment]:
    """``values`` cut before each index in ``cuts`` (for tests and one-off sums)."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(values))), len(values)]
    return [Segment.of(values[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
