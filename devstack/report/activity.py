"""What each agent did in a run, beyond its equity: its trades, its decisions and how they
went, its rejections and its model calls, read from the run's exported tables.

The rows stay plain data here (``devstack.report.metrics`` turns them into figures):

- **closed trades**: a ``trades`` row with an exit price is the closing of a position;
  its ``realized_pnl`` is the trade's outcome (> 0 a win, as the ledger counts it);
- **traded notional**: every ``trades`` row, quantity times its price (the entry price
  for an opening, the exit price for a closing);
- **scored decisions**: an action of a ``decisions`` row that stated a confidence and
  opened a position (its result's ``outcome`` is ``opened``, with the ``position_id``),
  once that position was closed: the confidence and whether the closing made money;
- **decision errors**: a decision's ``error`` (why it is a forced HOLD) by its kind, as
  the agent words it (``services/agent``): ``parse error: ``, ``provider error: `` (a
  timeout when the model gave no answer in time), ``disabled: ``, ``portfolio
  unavailable: ``, ``strategy failed: ``; **missed**: a finished cycle (completed or
  timed out) that expected the agent and has no decision of it;
- **rejections**: ``rejected_decisions`` rows (an action refused by risk or the ledger)
  and their reason codes;
- **model calls**: ``llm_api_calls`` rows: response time, tokens, estimated cost (USD).

A table missing from the folder has no rows (a season exported before it was).
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.common.contracts import PARSE_ERROR_PREFIX

PROVIDER_ERROR_PREFIX = "provider error: "
# The agent's words for a model that gave no answer in time (services/agent/llm.py,
# services/agent/providers/base.py).
TIMEOUT_MARKERS = ("no answer within", "the decision deadline came before an answer")
ERROR_KINDS = (
    ("parse_failures", PARSE_ERROR_PREFIX),
    ("provider_errors", PROVIDER_ERROR_PREFIX),
    ("disabled", "disabled: "),
    ("portfolio_unavailable", "portfolio unavailable: "),
    ("strategy_errors", "strategy failed: "),
)
OPENING_ACTIONS = ("BUY", "SELL")
FINISHED_CYCLES = ("completed", "timed_out")
# A decision row holds the whole decision: its prompt, the model's answer and reasoning,
# far longer than the csv module's default limit on a field (128 KiB).
FIELD_LIMIT = 2**31 - 1


@dataclass
class Activity:
    """One agent's rows in one run."""

    closed_pnl: list[float] = field(default_factory=list)
    traded_notional: float = 0.0
    # (confidence, won) of each scored decision
    scored: list[tuple[float, bool]] = field(default_factory=list)
    decisions: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    missed: int = 0
    rejections: int = 0
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def rows(path: Path) -> Iterator[dict[str, str]]:
    """Row by row (a season of months has millions of rows); none if the file is absent."""
    if not path.exists():
        return
    csv.field_size_limit(FIELD_LIMIT)
    with path.open(newline="") as lines:
        yield from csv.DictReader(lines)


def pg_array(text: str) -> list[str]:
    """A Postgres text array as COPY writes it (``{a,b}``, ``"a b"`` quoted) as a list."""
    inner = text.strip()
    if not inner.startswith("{") or not inner.endswith("}") or inner == "{}":
        return []
    return next(csv.reader([inner[1:-1]], escapechar="\\"))


def error_kind(error: str) -> str | None:
    """The kind of a decision's error (None for no error): a key of the reliability
    figures."""
    if not error:
        return None
    if error.startswith(PROVIDER_ERROR_PREFIX) and any(m in error for m in TIMEOUT_MARKERS):
        return "timeouts"
    for kind, prefix in ERROR_KINDS:
        if error.startswith(prefix):
            return kind
    return "other_errors"


def _money(text: str) -> float:
    return float(Decimal(text)) if text else 0.0


def _opened(decision: dict[str, str]) -> Iterator[tuple[float, str]]:
    """(confidence, position id) of each action of this decision that opened a position
    and stated a confidence."""
    actions: list[dict[str, Any]] = json.loads(decision["actions"] or "[]")
    results: list[dict[str, Any]] = json.loads(decision["results"] or "[]")
    for result in results:
        index = result.get("index")
        if result.get("outcome") != "opened" or not result.get("position_id"):
            continue
        if not isinstance(index, int) or not 0 <= index < len(actions):
            continue
        action = actions[index]
        confidence = action.get("confidence")
        if action.get("action") in OPENING_ACTIONS and confidence is not None:
            yield float(confidence), str(result["position_id"])


def read_activity(folder: Path) -> dict[str, Activity]:
    """Every agent's activity in the run exported to ``folder``."""
    found: dict[str, Activity] = defaultdict(Activity)
    closing_pnl: dict[str, float] = {}
    for row in rows(folder / "trades.csv"):
        agent = found[row["llm_id"]]
        price = row["exit_price"] or row["entry_price"]
        agent.traded_notional += _money(row["quantity"]) * _money(price)
        if row["exit_price"]:
            pnl = _money(row["realized_pnl"])
            agent.closed_pnl.append(pnl)
            closing_pnl[row["position_id"]] = pnl
    decided: set[tuple[str, str]] = set()
    for row in rows(folder / "decisions.csv"):
        agent = found[row["llm_id"]]
        agent.decisions += 1
        decided.add((row["cycle_id"], row["llm_id"]))
        kind = error_kind(row["error"])
        if kind is not None:
            agent.errors[kind] += 1
        for confidence, position in _opened(row):
            if position in closing_pnl:
                agent.scored.append((confidence, closing_pnl[position] > 0))
    for row in rows(folder / "cycles.csv"):
        if row["status"] not in FINISHED_CYCLES:
            continue
        for expected in pg_array(row.get("expected_agents", "")):
            if (row["cycle_id"], expected) not in decided:
                found[expected].missed += 1
    for row in rows(folder / "rejected_decisions.csv"):
        agent = found[row["llm_id"]]
        agent.rejections += 1
        agent.rejection_reasons.update(pg_array(row["reason_codes"]))
    for row in rows(folder / "llm_api_calls.csv"):
        agent = found[row["llm_id"]]
        agent.latencies_ms.append(float(row["response_time_ms"]))
        agent.prompt_tokens += int(row["prompt_tokens"])
        agent.completion_tokens += int(row["completion_tokens"])
        agent.cost_usd += _money(row["estimated_cost"])
    return dict(found)
