"""``report.html``: the season report as one page that opens offline.

Everything is in the file: the charts as ``data:`` URIs of their PNGs, the style inline,
no script (its Content-Security-Policy forbids any). The page shows the tables of
``devstack.report.tables``, the sections whose figures are absent left out. Every text
from the data (agent ids, models, paths) is escaped: autoescaping is on.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from devstack.report import tables

TEMPLATE = "report.html.j2"
CHARTS = {
    "equity": "Return since the start, cycle by cycle",
    "returns": "Return over the season with its 95 % interval",
    "pairwise": "P(A beats B)",
    "ranks": "Ranks over the runs",
    "reliability": "Reliability diagram",
}


@dataclass(frozen=True)
class Chart:
    name: str
    caption: str
    uri: str


def charts_in_page(charts: Mapping[str, bytes]) -> list[Chart]:
    return [
        Chart(
            name=name,
            caption=CHARTS.get(name, name),
            uri="data:image/png;base64," + base64.b64encode(charts[name]).decode("ascii"),
        )
        for name in [*(n for n in CHARTS if n in charts), *(n for n in charts if n not in CHARTS)]
    ]


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("devstack.report", "templates"),
        autoescape=True,  # agent ids, models and paths are text, never markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(
    report: Mapping[str, Any],
    charts: Mapping[str, bytes],
    *,
    span: tuple[str, str] | None = None,
) -> str:
    """The page for ``report`` (``report.json``'s content) with ``charts`` (name to PNG);
    ``span`` is the first and last cycle's id."""
    order = tables.ordered_agents(report)
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            season=tables.season_rows(report, span),
            lineup=tables.lineup_table(report),
            agents=tables.agents_table(report, order),
            sections=tables.section_tables(report, order),
            pairwise=tables.pairwise_table(report, order),
            baselines=tables.baseline_tables(report),
            across_runs=tables.across_runs_table(report, order),
            runs=tables.runs_table(report, order),
            charts={chart.name: chart for chart in charts_in_page(charts)},
        )
    )
