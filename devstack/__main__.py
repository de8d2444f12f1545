"""``python -m devstack run``: the whole arena on one machine (what ``make run`` calls).

Starts an embedded NATS (with the deployment's per-service users: nothing without
credentials can act on the arena) and an embedded Postgres when ``NATS_URL`` /
``DATABASE_URL`` are unset, applies the ledger's migrations, creates the streams as the
admin user, then runs every service as its own process under supervisord (one process
per agent of the line-up), which restarts a process that dies instead of stopping the
others. Ctrl-C stops them all, then the embedded servers; their data stays under
``ARENA_DATA_DIR`` (default ``.arena/``), so the next run continues the same race.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from deploy.nats_users import ADMIN_USER
from deploy.render import users_for
from devstack.credentials import NatsCredentials, connect_hints
from devstack.nats_server import EmbeddedNats
from devstack.ports import free_port, port_is_free
from devstack.postgres import EmbeddedPostgres
from devstack.processes import Program, agent_groups, hosts, programs
from devstack.report import cli as report_cli
from devstack.season import cli as season_cli
from devstack.supervisor import render_config, supervisord_command, write_config
from services.common.lineup import Lineup, load_lineup
from services.common.runner import load_settings
from services.common.settings import PROJECT_ROOT, Settings

DEFAULT_NATS_PORT = 4222


def say(line: str) -> None:
    print(f"[arena] {line}", flush=True)


def admin_token(data_dir: Path) -> str:
    """The control API token: ``ARENA_ADMIN_TOKEN``, else one generated once and kept."""
    if os.environ.get("ARENA_ADMIN_TOKEN"):
        return os.environ["ARENA_ADMIN_TOKEN"]
    path = data_dir / "admin_token"
    if path.exists():
        say(f"admin token: kept in {path}")
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    say(f"admin token (shown once, kept in {path}): {token}")
    return token


class Nats:
    """Where the processes find NATS, and as whom each connects."""

    def __init__(self, url: str | None, credentials: NatsCredentials | None, port: int) -> None:
        self._url = url
        self._credentials = credentials
        self._port = port

    def url_for(self, user: str) -> str:
        if self._credentials is None:
            assert self._url is not None
            return self._url  # the user's own server: its URL as given
        return self._credentials.url(user, "127.0.0.1", self._port)


def _start_nats(
    data_dir: Path, lineup: Lineup, hosted: dict[str, tuple[str, ...]]
) -> tuple[EmbeddedNats | None, Nats]:
    if os.environ.get("NATS_URL"):
        say(f"using NATS at {os.environ['NATS_URL'].split('@')[-1]} (its users are yours)")
        return None, Nats(os.environ["NATS_URL"], None, 0)
    credentials = NatsCredentials(data_dir / "nats" / "passwords.env", users_for(lineup, hosted))
    config = credentials.write_server_config(data_dir / "nats" / "auth.conf")
    port = DEFAULT_NATS_PORT if port_is_free(DEFAULT_NATS_PORT) else None
    server = EmbeddedNats(
        data_dir / "nats", port=port, config=config, env=credentials.server_environment()
    )
    server.start()
    say(
        f"embedded NATS with JetStream on 127.0.0.1:{server.port}, every process as its own "
        f"user (data in {data_dir / 'nats'})"
    )
    for hint in connect_hints(credentials, "127.0.0.1", server.port):
        say(hint)
    return server, Nats(None, credentials, server.port)


def _run_once(command: list[str], env: Mapping[str, str], what: str) -> None:
    say(what)
    subprocess.run([sys.executable, *command], env=dict(env), check=True, cwd=PROJECT_ROOT)


def _program_env(program: Program, nats: Nats, data_dir: Path) -> dict[str, str]:
    env = {
        "NATS_URL": nats.url_for(program.user),
        "METRICS_PORT": str(program.metrics_port),
        **dict(program.env),
    }
    if program.name == "gateway":
        env["ARENA_PROCESS_STATUS_FILE"] = str(data_dir / "processes.json")
    return env


def run(data_dir: Path, settings: Settings, *, free_ports: bool = False) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    lineup = load_lineup(settings.agents_file)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("NATS_URL", None)  # each process gets its own user's
    nats_server: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    try:
        groups = agent_groups(lineup, settings.agents_per_process)
        nats_server, nats = _start_nats(data_dir, lineup, hosts(groups))
        if not os.environ.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(data_dir / "postgres", keep=True)
            postgres.start()
            env["DATABASE_URL"] = postgres.ensure_database("arena")
            say(f"embedded Postgres (data in {data_dir / 'postgres'})")
        else:
            say("using Postgres from DATABASE_URL")
        env["ARENA_ADMIN_TOKEN"] = admin_token(data_dir)

        _run_once(["-m", "services.ledger", "migrate"], env, "applying database migrations")
        _run_once(
            ["-m", "services.ledger", "streams"],
            {**env, "NATS_URL": nats.url_for(ADMIN_USER)},
            "creating the event streams (as the admin user)",
        )
        return _supervise(data_dir, lineup, settings, nats, env, free_ports=free_ports)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if nats_server is not None:
            nats_server.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")


def _supervise(
    data_dir: Path,
    lineup: Lineup,
    settings: Settings,
    nats: Nats,
    env: dict[str, str],
    *,
    free_ports: bool,
) -> int:
    is_free = (lambda _: False) if free_ports else port_is_free
    placed = programs(
        lineup,
        port_is_free=is_free,
        free_port=free_port,
        agents_per_process=settings.agents_per_process,
        reserved=(settings.gateway_port,),
    )
    agent_processes = sum(1 for p in placed if p.module == "services.agent")
    status_file = data_dir / "processes.json"
    status_file.unlink(missing_ok=True)
    config = write_config(
        data_dir / "supervisord.conf",
        render_config(
            [(p, _program_env(p, nats, data_dir)) for p in placed],
            data_dir=data_dir,
            directory=PROJECT_ROOT,
            python=sys.executable,
            status_file=status_file,
        ),
    )
    say(
        f"starting market, {len(lineup.active)} agents ({agent_processes} processes), risk, "
        f"ledger and gateway under supervisord; API and dashboard on "
        f"http://{settings.gateway_host}:{settings.gateway_port}"
    )
    say("metrics: " + ", ".join(f"{p.name} :{p.metrics_port}" for p in placed))
    say(f"a process that dies is restarted; state: supervisorctl -c {config} status")
    say("press Ctrl-C to stop everything")
    supervisord = subprocess.Popen(
        supervisord_command(config), env=env, cwd=PROJECT_ROOT, start_new_session=True
    )
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            say("stopping every process")
        stopping = True
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = supervisord.wait()
    return 0 if stopping else (code or 1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the whole arena locally")
    run_parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("ARENA_DATA_DIR", PROJECT_ROOT / ".arena")),
    )
    run_parser.add_argument(
        "--free-ports",
        action="store_true",
        help="give every process a free metrics port instead of 9101 and up (arenas started "
        "side by side, such as benchmarks, would otherwise race for the same defaults)",
    )
    season_parser = sub.add_parser(
        "season", help="replay history through isolated arenas, several runs (docs/seasons.md)"
    )
    season_cli.add_arguments(season_parser)
    report_parser = sub.add_parser(
        "report",
        help="a season's statistics: DIR/report.json, DIR/report.html (docs/seasons.md#report)",
    )
    report_cli.add_arguments(report_parser)
    args = parser.parse_args()
    if args.command == "run":
        sys.exit(run(args.data_dir, load_settings("arena"), free_ports=args.free_ports))
    if args.command == "season":
        sys.exit(season_cli.main(args))
    if args.command == "report":
        sys.exit(report_cli.main(args))


if __name__ == "__main__":
    main()
