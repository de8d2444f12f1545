"""A whole arena as ``make run`` starts it (``python -m devstack run --free-ports``), for
seasons (devstack/season) and the benchmarks that measure every service at once.

:func:`launch` starts it in a folder of its own, with its output in ``run.log``, and stops
it (SIGINT, as Ctrl-C would) on the way out; :class:`Launch` reads what it printed and
follows it; :func:`wait_for_cycles` waits for completed cycles.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.common.settings import PROJECT_ROOT

# Left out of the arena's environment: it makes its own.
OWN_SETTINGS = ("NATS_URL", "DATABASE_URL", "ARENA_ADMIN_TOKEN")


@dataclass(frozen=True)
class Launch:
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def nats_port(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"embedded NATS with JetStream on 127\.0\.0\.1:(\d+)", self.text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the arena did not start NATS:\n{self.text()[-3000:]}")

    def password(self, user: str) -> str:
        path = self.data_dir / "nats" / "passwords.env"
        variable = "NATS_PASSWORD_" + user.upper()
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name == variable:
                return value
        raise KeyError(variable)

    def tooling_url(self, timeout: float = 120) -> str:
        """The read-only NATS URL ``make run`` prints, with the password it generated."""
        passwords = self.data_dir / "nats" / "passwords.env"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text() if self.log.exists() else ""
            match = re.search(r"NATS_URL=nats://tooling:.*@([\w.]+:\d+)", text)
            if match and passwords.exists():
                with contextlib.suppress(KeyError):
                    return f"nats://tooling:{self.password('tooling')}@{match.group(1)}"
            time.sleep(0.2)
        raise RuntimeError("the arena did not print its tooling NATS URL")

    def check_running(self) -> None:
        """Raises with the log's tail once the arena has stopped."""
        if self.process.poll() is not None:
            raise RuntimeError(f"the arena stopped:\n{self.text()[-3000:]}")


@contextlib.contextmanager
def launch(
    root: Path,
    settings: Mapping[str, str],
    *,
    drop: tuple[str, ...] = (),
    stop_timeout: float = 120,
) -> Iterator[Launch]:
    """The arena under ``root`` with ``settings`` (and without ``drop``) in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in (*OWN_SETTINGS, *drop)}
    env.update(LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.update(settings)
    log_path = root / "run.log"
    command = [sys.executable, "-m", "devstack", "run", "--free-ports"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--data-dir", str(root / "arena")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Launch(process, log_path, root / "arena")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def scheduler_status(http: httpx.Client) -> dict[str, Any] | None:
    """The gateway's ``/scheduler/status``; None while it does not answer."""
    try:
        reply = http.get("/scheduler/status")
    except httpx.HTTPError:
        return None
    return reply.json() if reply.status_code == 200 else None


def wait_for_cycles(port: int, count: int, arena: Launch, timeout: float) -> None:
    """Until the arena whose gateway is on ``port`` has completed ``count`` cycles."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while time.monotonic() < deadline:
            arena.check_running()
            status = scheduler_status(http)
            if status is not None and status["cycles_completed"] >= count:
                return
            time.sleep(0.5)
    tail = arena.text().splitlines()[-5:]
    raise RuntimeError(f"{count} cycles did not complete within {timeout:.0f} s: {tail}")
