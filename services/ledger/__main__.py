"""``python -m services.ledger [run|migrate|verify|streams|dlq]``.

Run the ledger (the default), apply migrations, check the books, create or update the
event streams (as a NATS user allowed to), or inspect and re-drive the dead letters of
every service (``dlq list``, ``dlq replay SEQ...``, ``dlq drop SEQ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from services.common.dead_letters import DeadLetterBox, Letter
from services.common.logs import configure_logging
from services.common.nats_connection import connect_command
from services.common.runner import load_settings
from services.common.runner import main as run_service
from services.common.settings import Settings
from services.common.streams import apply_streams
from services.ledger.database import connect
from services.ledger.migrate import apply_migrations
from services.ledger.service import build
from services.ledger.verify import UNBOOKED_GRACE, verify


async def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    conn = await connect(settings)
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    print(f"migrations applied: {', '.join(applied)}" if applied else "migrations: up to date")
    return 0


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    conn = await connect(settings)
    try:
        problems = await verify(
            conn, timedelta(seconds=args.unbooked_grace_seconds), full=args.full
        )
    finally:
        await conn.close()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("ok")
    return 0


async def _streams(settings: Settings, _: argparse.Namespace) -> int:
    for line in await apply_streams(settings):
        print(line)
    return 0


def _line(letter: Letter) -> str:
    at = letter.at.isoformat(timespec="seconds") if letter.at else "?"
    return (
        f"{letter.seq:>6}  {at}  {letter.subject}  consumer={letter.consumer}  "
        f"reason={letter.reason}  deliveries={letter.deliveries}  {len(letter.data)} B\n"
        f"        {letter.error}"
    )


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    nc = await connect_command(settings, "ledger-dlq", retry_seconds=10.0)
    try:
        box = DeadLetterBox(nc.jetstream())
        letters = await box.letters()
        if args.action == "list":
            for letter in letters:
                print(_line(letter))
            print(f"{len(letters)} dead letter(s)")
            return 0
        seqs = [letter.seq for letter in letters] if args.all else args.seq
        if not seqs:
            print("name the sequences to act on (see `dlq list`), or --all", file=sys.stderr)
            return 2
        failed = 0
        for seq in seqs:
            try:
                print(await (box.replay(seq) if args.action == "replay" else box.drop(seq)))
            except LookupError as exc:
                print(exc, file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    finally:
        await nc.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.ledger")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the ledger service (the default)")
    sub.add_parser("migrate", help="apply the database migrations")
    check = sub.add_parser("verify", help="recompute every account and check the decision log")
    check.add_argument(
        "--unbooked-grace-seconds",
        type=float,
        default=UNBOOKED_GRACE.total_seconds(),
        help="a proposed decision younger than this may still be on its way (default %(default)g)",
    )
    check.add_argument(
        "--full",
        action="store_true",
        help="check the whole decision chain and every proposal, not only what came after "
        "the last clean check",
    )
    sub.add_parser(
        "streams",
        help="create the event streams or bring them to the settings (needs a NATS user "
        "allowed to manage streams: the admin)",
    )
    dlq = sub.add_parser("dlq", help="list, re-drive or drop dead letters (NATS_URL's user)")
    dlq.add_argument("action", choices=("list", "replay", "drop"))
    dlq.add_argument("seq", nargs="*", type=int, help="dead-letter sequences (see `dlq list`)")
    dlq.add_argument("--all", action="store_true", help="act on every dead letter")
    return parser


def main() -> None:
    args = _parser().parse_args()
    command = args.command or "run"
    settings = load_settings("ledger")
    if command == "run":
        run_service("ledger", build, settings)
        return
    configure_logging("ledger", settings.log_level, settings.log_dir)
    commands = {"migrate": _migrate, "verify": _verify, "streams": _streams, "dlq": _dlq}
    try:
        code = asyncio.run(commands[command](settings, args))
    except Exception as exc:
        print(f"ledger {command} failed: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
