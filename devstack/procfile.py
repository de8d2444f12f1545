"""The Procfile honcho runs: one line per process, agents taken from the line-up."""

from __future__ import annotations

from pathlib import Path

from services.common.lineup import Lineup

FIRST_METRICS_PORT = 9101


def procfile_lines(lineup: Lineup) -> list[str]:
    processes: list[tuple[str, str, str]] = [("market", "market", "")]
    processes += [
        (f"agent-{agent.id}", "agent", f"AGENT_ID={agent.id} ") for agent in lineup.active
    ]
    processes += [("risk", "risk", ""), ("ledger", "ledger", ""), ("gateway", "gateway", "")]
    lines = []
    for offset, (name, module, env) in enumerate(processes):
        port = FIRST_METRICS_PORT + offset
        lines.append(f"{name}: {env}METRICS_PORT={port} exec python -m services.{module}")
    return lines


def write_procfile(path: Path, lineup: Lineup) -> Path:
    path.write_text("\n".join(procfile_lines(lineup)) + "\n")
    return path
