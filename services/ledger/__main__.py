"""``python -m services.ledger [migrate|verify]``: run the ledger, migrate, or check the books."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.common.logs import configure_logging
from services.common.runner import main as run_service
from services.common.settings import Settings
from services.ledger.database import connect
from services.ledger.migrate import apply_migrations
from services.ledger.service import build
from services.ledger.verify import verify


async def _migrate(settings: Settings) -> int:
    conn = await connect(settings)
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    print(f"migrations applied: {', '.join(applied)}" if applied else "migrations: up to date")
    return 0


async def _verify(settings: Settings) -> int:
    conn = await connect(settings)
    try:
        problems = await verify(conn)
    finally:
        await conn.close()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("ok")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.ledger")
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "migrate", "verify"),
        default="run",
        help="run the service (default), apply migrations, or recompute every account",
    )
    command = parser.parse_args().command
    settings = Settings()
    if command == "run":
        run_service("ledger", build, settings)
        return
    configure_logging("ledger", settings.log_level, settings.log_dir)
    try:
        code = asyncio.run(_migrate(settings) if command == "migrate" else _verify(settings))
    except Exception as exc:
        print(f"ledger {command} failed: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
