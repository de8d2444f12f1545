"""``python -m devstack.restarts STATUS_FILE``: supervisord's listener of process events.

Counts, per process, the starts and the unexpected exits supervisord reports, says each
restart on the terminal, and keeps ``STATUS_FILE`` (JSON) current for the gateway's
``/health``: ``{"<process>": {"state": ..., "restarts": n, "unexpected_exits": n,
"since": "<ISO time>"}}``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from supervisor import childutils


@dataclass
class ProcessRecord:
    state: str = "STARTING"
    starts: int = 0
    unexpected_exits: int = 0
    since: str = ""

    @property
    def restarts(self) -> int:
        return max(self.starts - 1, 0)


class RestartLedger:
    """Pure bookkeeping of process events (the listener loop feeds it)."""

    def __init__(self) -> None:
        self.records: dict[str, ProcessRecord] = {}

    def event(self, name: str, process: str, expected: bool, at: datetime) -> str | None:
        """Record one event; returns a line to show, if the event is worth one."""
        record = self.records.setdefault(process, ProcessRecord())
        state = name.removeprefix("PROCESS_STATE_")
        record.state = state
        record.since = at.isoformat(timespec="seconds")
        if state == "RUNNING":
            record.starts += 1
            if record.starts > 1:
                return f"{process} is running again (restart {record.restarts})"
        elif state == "EXITED" and not expected:
            record.unexpected_exits += 1
            return f"{process} exited unexpectedly; supervisord restarts it"
        elif state == "BACKOFF":
            record.unexpected_exits += 1
            return f"{process} failed to start; retrying after a pause"
        elif state == "FATAL":
            return f"{process} could not be started: giving up"
        return None

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            name: {**asdict(record), "restarts": record.restarts}
            for name, record in sorted(self.records.items())
        }


def _write(path: Path, content: dict[str, dict[str, object]]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(content, indent=1), encoding="utf-8")
    os.replace(partial, path)


def listen(status: Path, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> None:
    ledger = RestartLedger()
    while True:
        headers, payload = childutils.listener.wait(stdin, stdout)
        fields, _ = childutils.eventdata(payload + "\n")
        line = ledger.event(
            headers["eventname"],
            fields.get("processname", "?"),
            fields.get("expected", "1") == "1",
            datetime.now(UTC),
        )
        if line is not None:
            print(f"[arena] {line}", file=stderr, flush=True)
        try:
            _write(status, ledger.snapshot())
        except OSError as exc:
            print(f"[arena] cannot write {status}: {exc}", file=stderr, flush=True)
        childutils.listener.ok(stdout)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m devstack.restarts STATUS_FILE")
    listen(Path(sys.argv[1]), sys.stdin, sys.stdout, sys.stderr)


if __name__ == "__main__":
    main()
