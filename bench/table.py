"""The one table ``make bench`` prints: every figure against its target and the last run.

Pure functions on Measure lists: what each benchmark module gave (``Outcome``), the
comparison with earlier saved figures (``compare``) and the rendering (``render``).
Running the modules is bench/runner.py's job; saving and loading runs is bench/results.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from bench.measures import Better, Measure

# A figure worse than its previous value by more than this fraction is a regression.
REGRESSION = 0.20


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    NOT_AVAILABLE = "not available"


@dataclass(frozen=True)
class Outcome:
    """What one benchmark module gave: its figures, or why there are none."""

    module: str
    status: Status
    measures: tuple[Measure, ...] = ()
    detail: str = ""
    seconds: float = 0.0


Key = tuple[str, str]  # (group, name): what the regression check matches on


def key(measure: Measure) -> Key:
    return measure.group, measure.name


@dataclass(frozen=True)
class Change:
    """A figure next to its previous value: the relative change and whether it regressed."""

    previous: float
    fraction: float | None  # (value - previous) / previous; None when previous is 0
    regression: bool


def change(measure: Measure, previous: float) -> Change:
    if previous == 0:
        return Change(previous, None, False)
    fraction = (measure.value - previous) / abs(previous)
    worse = fraction if measure.better is Better.LOWER else -fraction
    return Change(previous, fraction, worse > REGRESSION)


def compare(current: Iterable[Measure], previous: Mapping[Key, float]) -> dict[Key, Change]:
    """The change of every current figure that has a previous value."""
    return {key(m): change(m, previous[key(m)]) for m in current if key(m) in previous}


# ---------------------------------------------------------------- JSON


def measure_to_json(measure: Measure) -> dict[str, Any]:
    data = asdict(measure)
    data["better"] = measure.better.value
    return data


def measure_from_json(data: Mapping[str, Any]) -> Measure:
    return Measure(
        group=str(data["group"]),
        name=str(data["name"]),
        value=float(data["value"]),
        unit=str(data["unit"]),
        better=Better(data.get("better", Better.LOWER.value)),
        target=None if data.get("target") is None else float(data["target"]),
        reference=None if data.get("reference") is None else float(data["reference"]),
        reference_name=str(data.get("reference_name", "")),
    )


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "module": outcome.module,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "seconds": round(outcome.seconds, 2),
        "measures": [measure_to_json(m) for m in outcome.measures],
    }


def outcome_from_json(data: Mapping[str, Any]) -> Outcome:
    return Outcome(
        module=str(data["module"]),
        status=Status(data["status"]),
        measures=tuple(measure_from_json(m) for m in data.get("measures", ())),
        detail=str(data.get("detail", "")),
        seconds=float(data.get("seconds", 0.0)),
    )


# ---------------------------------------------------------------- rendering


def number(value: float) -> str:
    """Three significant figures or so, with thousands separators for big ones."""
    size = abs(value)
    if size >= 1000 or (size >= 10 and float(value).is_integer()):
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _with_unit(value: float, unit: str) -> str:
    return f"{number(value)} {unit}".rstrip()


def _target(measure: Measure) -> str:
    if measure.target is None:
        return ""
    sign = "≤" if measure.better is Better.LOWER else "≥"
    return f"{sign} {_with_unit(measure.target, measure.unit)}"


def _reference(measure: Measure) -> str:
    if measure.reference is None:
        return ""
    return f"{measure.reference_name} {_with_unit(measure.reference, measure.unit)}".strip()


def _verdict(measure: Measure) -> str:
    met = measure.meets_target
    return "" if met is None else ("ok" if met else "MISS")


def _change(found: Change | None) -> str:
    if found is None:
        return "new"
    if found.fraction is None:
        return ""
    text = f"{found.fraction * 100:+.0f} %"
    return f"REGRESSION {text}" if found.regression else text


@dataclass
class _Grid:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def text(self) -> str:
        widths = [
            max(len(row[i]) for row in (self.header, *self.rows)) for i in range(len(self.header))
        ]
        lines = []
        for n, row in enumerate((self.header, *self.rows)):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)


HEADER = (
    "group", "measure", "value", "reference (same run)", "ratio", "target", "status", "vs last"
)  # fmt: skip


def render(outcomes: Sequence[Outcome], changes: Mapping[Key, Change] | None = None) -> str:
    """The table: one row per figure; a module without figures is one row saying why.

    Without ``changes`` (a benchmark run alone) there is no "vs last" column.
    """
    grid = _Grid(HEADER)
    for outcome in outcomes:
        if outcome.status is not Status.OK or not outcome.measures:
            status = "FAILED" if outcome.status is Status.FAILED else outcome.status.value
            detail = outcome.detail or "no figures"
            short = detail if len(detail) <= 60 else detail[:57] + "..."
            grid.rows.append((outcome.module, f"({short})", "", "", "", "", status, ""))
            continue
        for m in outcome.measures:
            ratio = m.ratio
            grid.rows.append(
                (
                    m.group,
                    m.name,
                    _with_unit(m.value, m.unit),
                    _reference(m),
                    "" if ratio is None else f"x{number(ratio)}",
                    _target(m),
                    _verdict(m),
                    "" if changes is None else _change(changes.get(key(m))),
                )
            )
    if changes is None:
        grid = _Grid(HEADER[:-1], [row[:-1] for row in grid.rows])
    return grid.text()


def summary(outcomes: Sequence[Outcome], changes: Mapping[Key, Change]) -> str:
    measures = [m for o in outcomes for m in o.measures]
    missed = sum(1 for m in measures if m.meets_target is False)
    judged = sum(1 for m in measures if m.meets_target is not None)
    regressions = sum(1 for c in changes.values() if c.regression)
    failed = [o.module for o in outcomes if o.status is Status.FAILED]
    absent = [o.module for o in outcomes if o.status is Status.NOT_AVAILABLE]
    parts = [
        f"{len(measures)} figures, {judged - missed}/{judged} targets met",
        f"{regressions} regression{'s' if regressions != 1 else ''} (> {REGRESSION:.0%} worse)",
    ]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    if absent:
        parts.append(f"not available: {', '.join(absent)}")
    return "; ".join(parts)


def print_measures(measures: Sequence[Measure]) -> None:
    """What a benchmark's own ``main()`` prints: its figures in the table's format."""
    print(render([Outcome("", Status.OK, tuple(measures))]))
