"""Processes a benchmark starts: each with its log, stopped on the way out, and waited
for until its HTTP endpoint answers."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` run with ``env``, its output in ``log``; terminated (then killed) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until ``url`` answers 2xx; raises once ``proc`` exited or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited; see {log}")
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s; see {log}")


def wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until ``text`` shows in ``log``; raises once ``proc`` exited or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited; see {log}")
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} not seen in {log} within {timeout}s")
