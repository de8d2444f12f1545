"""The decision log's hash chain, pure: canonical JSON of a row and sha256 links.

hash(n) = sha256(hash(n-1) || canonical JSON of row n), with hash(0) = 64 zeros. The
canonical form (sorted keys, no spaces, UTC timestamps in ISO 8601) is recomputable
from the stored columns, so ``verify`` can recompute every link from the rows alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class DecisionContent:
    """The part of a decisions row the chain covers."""

    decision_id: str
    cycle_id: str
    agent_id: str
    decision: dict[str, Any] | None
    results: list[dict[str, Any]]
    applied_at: datetime
    columns: dict[str, Any]
    """The row's other columns (actions, reasoning, model, prompt_sha256, error, decided_at)."""


@dataclass(frozen=True)
class ChainLink:
    seq: int
    prev_hash: str
    hash: str


def columns(
    *,
    actions: list[dict[str, Any]],
    reasoning: str,
    model: str,
    prompt_sha256: str | None,
    error: str | None,
    decided_at: datetime,
) -> dict[str, Any]:
    return {
        "actions": actions,
        "reasoning": reasoning,
        "model": model,
        "prompt_sha256": prompt_sha256,
        "error": error,
        "decided_at": decided_at.astimezone(UTC).isoformat(),
    }


def canonical(row: DecisionContent) -> str:
    body = {
        "decision_id": row.decision_id,
        "cycle_id": row.cycle_id,
        "llm_id": row.agent_id,
        "decision": row.decision,
        "results": row.results,
        "applied_at": row.applied_at.astimezone(UTC).isoformat(),
        "columns": row.columns,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(prev_hash: str, row: DecisionContent) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


def link(seq: int, prev_hash: str, row: DecisionContent) -> ChainLink:
    return ChainLink(seq=seq, prev_hash=prev_hash, hash=digest(prev_hash, row))


def check(
    rows: Sequence[tuple[int | None, str | None, str | None, DecisionContent]],
    head: tuple[int, str] | None = None,
    after: tuple[int, str] = (0, GENESIS),
) -> list[str]:
    """Every break in the chain, one line each; ``rows`` in chain order, the first one
    right after position ``after`` (seq, hash): the start, or a point checked before."""
    problems: list[str] = []
    expected_prev = after[1]
    expected_seq = after[0] + 1
    for seq, prev_hash, stored_hash, row in rows:
        name = row.decision_id
        if seq is None or stored_hash is None or prev_hash is None:
            problems.append(f"decision {name}: not in the hash chain")
            continue
        if seq != expected_seq:
            problems.append(f"decision {name}: sequence {seq}, expected {expected_seq}")
        if prev_hash != expected_prev:
            problems.append(f"decision {name}: prev_hash does not match the previous row's hash")
        if digest(prev_hash, row) != stored_hash:
            problems.append(f"decision {name}: hash does not match its content (altered row)")
        expected_prev = stored_hash
        expected_seq = seq + 1
    if head is not None and head != (expected_seq - 1, expected_prev):
        problems.append(
            f"the chain head is {head[0]}:{head[1][:12]}..., the rows end at "
            f"{expected_seq - 1}:{expected_prev[:12]}... (a row was deleted or added)"
        )
    return problems
