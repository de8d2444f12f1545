"""CPU seconds spent by processes a benchmark starts, read from the operating system."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import psutil


def process_seconds(processes: Iterable[tuple[str, psutil.Process]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far, summed by name."""
    found: dict[str, float] = {}
    for name, process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            found[name] = found.get(name, 0.0) + times.user + times.system
    return found


def postgres_seconds(data_dir: Path) -> float:
    """CPU seconds of the Postgres server started on ``data_dir`` and its backends, those
    running and those ended (the server's waited-for children)."""
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "-D" not in command or Path(command[command.index("-D") + 1]) != data_dir:
            continue
        with contextlib.suppress(psutil.Error):
            server = process.cpu_times()
            total += server.children_user + server.children_system
            for one in (process, *process.children(recursive=True)):
                times = one.cpu_times()
                total += times.user + times.system
    return total
