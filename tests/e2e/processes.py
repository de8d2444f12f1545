"""Services as real operating-system processes, for end-to-end and crash tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nats

from services.common import subjects
from services.common.settings import PROJECT_ROOT
from tests.support import eventually


class ServiceProcess:
    """``python -m services.<module>`` with its own environment and a log file."""

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        log_dir: Path,
        args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.module = module
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc

    def start(self) -> ServiceProcess:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module}", *self.args],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log_entries(self) -> list[dict[str, object]]:
        """JSON log lines written since the last start."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode(errors="replace")
        entries = []
        for line in text.splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "<no log>"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_started(self, timeout: float = 30.0) -> int:
        """Wait for the runner's "<name> started" line; return the metrics port."""

        def started() -> int | None:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            for entry in self.log_entries():
                if str(entry.get("msg", "")).endswith(" started") and "metrics_port" in entry:
                    return int(str(entry["metrics_port"]))
            return None

        try:
            port: int = await eventually(started, timeout=timeout, what=f"{self.name} start")
            return port
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.tail()}") from None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL only if it hangs)."""
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else 0
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise AssertionError(
                f"{self.name} did not stop within {timeout}s of SIGTERM:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


async def assert_stops_cleanly_while_consuming(process: ServiceProcess, durable: str) -> None:
    """Start ``process`` and SIGTERM it once three of its pulls on ``durable`` went out: it
    must exit 0. A drain used to hang once a fetch had expired (its late status reply stayed
    queued with no reader), so a few are let expire first."""
    nc = await nats.connect(process.env["NATS_URL"])
    pulls = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{subjects.STREAM}.{durable}")
    try:
        await process.start().wait_started()
        await eventually(lambda: pulls.delivered >= 3, what="three pull requests")
        assert process.stop(timeout=10) == 0
    finally:
        if process.proc.poll() is None:
            process.kill()
        await nc.close()


def play_season(
    data: Path, out: Path, lineup: Path, *options: str, env: Mapping[str, str]
) -> dict[str, Any]:
    """``python -m devstack season`` as a user runs it; its ``summary.json`` once it
    succeeded (the command's output in the assertion when it did not)."""
    command = [
        sys.executable, "-m", "devstack", "season",
        "--data", str(data), "--out", str(out), "--lineup", str(lineup),
        "--run-timeout", "600", *options,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[season] run 0: done" in done.stdout
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary
