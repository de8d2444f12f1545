"""A real nats-server running deploy/nats/nats.conf, with users rendered for a line-up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from deploy import render
from deploy.nats_users import NatsUser, render_auth_conf
from devstack.nats_server import nats_server_binary
from devstack.ports import free_port
from services.common.lineup import load_lineup


class AuthNats:
    def __init__(self, port: int, users: tuple[NatsUser, ...]) -> None:
        self.port = port
        self.users = {u.name: u for u in users}

    def password(self, user: str) -> str:
        return f"pw-{user}"

    def url(self, user: str) -> str:
        return f"nats://{user}:{self.password(user)}@127.0.0.1:{self.port}"


@contextmanager
def auth_nats(
    workdir: Path, lineup_path: Path, hosts: Mapping[str, tuple[str, ...]] | None = None
) -> Iterator[AuthNats]:
    """The deployed nats.conf, with auth.conf rendered from ``lineup_path`` (and ``hosts``:
    processes hosting several agents, as ``make run`` may group them)."""
    config_dir = workdir / "nats-config"
    config_dir.mkdir(parents=True)
    # The deployed config with this test's store and monitoring port; the rest as is.
    deployed = (render.ROOT / "deploy/nats/nats.conf").read_text(encoding="utf-8")
    config = deployed.replace('"/data"', f'"{workdir / "js"}"').replace(
        "http_port: 8222", f"http_port: {free_port()}"
    )
    assert config != deployed, "nats.conf no longer has the store and port this test replaces"
    (config_dir / "nats.conf").write_text(config, encoding="utf-8")
    users = render.users_for(load_lineup(lineup_path), hosts)
    (config_dir / "auth.conf").write_text(render_auth_conf(users), encoding="utf-8")
    server = AuthNats(free_port(), users)
    env = {**os.environ, **{u.password_variable: server.password(u.name) for u in users}}
    log = (workdir / "nats.log").open("ab")
    proc = subprocess.Popen(
        [
            str(nats_server_binary()),
            "-c",
            str(config_dir / "nats.conf"),
            "-a",
            "127.0.0.1",
            "-p",
            str(server.port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_for_port(server.port, proc, workdir / "nats.log")
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited: {log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("nats-server did not listen within 15s")
