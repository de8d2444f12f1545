"""``python -m devstack run``: the whole arena on one machine (what ``make run`` calls).

Starts an embedded NATS and Postgres when ``NATS_URL`` / ``DATABASE_URL`` are unset,
applies the ledger's migrations, then runs every service as its own process with
honcho (one process per agent of the line-up). Ctrl-C stops them all, then the
embedded servers; their data stays under ``ARENA_DATA_DIR`` (default ``.arena/``),
so the next run continues the same race.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from devstack.nats_server import EmbeddedNats
from devstack.ports import port_is_free
from devstack.postgres import EmbeddedPostgres
from devstack.procfile import write_procfile
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT, Settings, settings_problems

DEFAULT_NATS_PORT = 4222
HONCHO_STOPPED_BY_SIGTERM = 128 + signal.SIGTERM


def say(line: str, *, error: bool = False) -> None:
    print(f"[arena] {line}", file=sys.stderr if error else sys.stdout, flush=True)


def admin_token(data_dir: Path) -> str:
    """The control API token: ``ARENA_ADMIN_TOKEN``, else one generated once and kept."""
    if os.environ.get("ARENA_ADMIN_TOKEN"):
        return os.environ["ARENA_ADMIN_TOKEN"]
    path = data_dir / "admin_token"
    if path.exists():
        say(f"admin token: kept in {path}")
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    say(f"admin token (shown once, kept in {path}): {token}")
    return token


def load_settings() -> Settings | None:
    """The settings, or None after saying which variables are wrong (never their values)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = settings_problems(exc)
    say("cannot start: invalid configuration", error=True)
    for problem in problems:
        say(f"  {problem}", error=True)
    return None


def run(data_dir: Path, settings: Settings) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    try:
        if not os.environ.get("NATS_URL"):
            port = DEFAULT_NATS_PORT if port_is_free(DEFAULT_NATS_PORT) else None
            nats = EmbeddedNats(data_dir / "nats", port=port)
            nats.start()
            env["NATS_URL"] = nats.url
            say(f"embedded NATS with JetStream at {nats.url} (data in {data_dir / 'nats'})")
        else:
            say(f"using NATS at {env['NATS_URL']}")
        if not os.environ.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(data_dir / "postgres", keep=True)
            postgres.start()
            env["DATABASE_URL"] = postgres.ensure_database("arena")
            say(f"embedded Postgres (data in {data_dir / 'postgres'})")
        else:
            say("using Postgres from DATABASE_URL")
        env["ARENA_ADMIN_TOKEN"] = admin_token(data_dir)

        say("applying database migrations")
        subprocess.run([sys.executable, "-m", "services.ledger", "migrate"], env=env, check=True)

        lineup = load_lineup(settings.agents_file)
        procfile = write_procfile(data_dir / "Procfile", lineup)
        say(
            f"starting market, {len(lineup.active)} agents, risk, ledger and gateway; "
            f"API and dashboard on http://{settings.gateway_host}:{settings.gateway_port}"
        )
        say("press Ctrl-C to stop everything")
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(procfile), "-d", str(PROJECT_ROOT)],
            env=env,
            start_new_session=True,
        )

        stopping = False

        def forward(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            say("stopping every process")
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        code = honcho.wait()
        # honcho answers a SIGTERM with 143 even when every process stopped cleanly.
        return 0 if stopping and code == HONCHO_STOPPED_BY_SIGTERM else code
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the whole arena locally")
    run_parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("ARENA_DATA_DIR", PROJECT_ROOT / ".arena")),
    )
    args = parser.parse_args()
    if args.command == "run":
        settings = load_settings()
        sys.exit(2 if settings is None else run(args.data_dir, settings))


if __name__ == "__main__":
    main()
