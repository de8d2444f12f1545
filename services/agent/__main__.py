"""``python -m services.agent``: one agent of the line-up (``AGENT_ID=<id>``), or several
hosted by one process (``--agents a,b,c`` or ``ARENA_AGENT_IDS=a,b,c``, see
:mod:`services.agent.host`)."""

from __future__ import annotations

import argparse
import logging
import sys

from services.agent.factory import check_spec
from services.agent.host import build, process_name
from services.agent.identity import AgentConfigError, resolve_agents
from services.common.logs import configure_logging
from services.common.runner import load_settings, main


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.agent")
    parser.add_argument(
        "--agents",
        default=None,
        help="line-up entries to host, comma-separated (default: ARENA_AGENT_IDS, AGENT_ID)",
    )
    args = parser.parse_args(argv)
    settings = load_settings("agent")
    if args.agents is not None:
        ids = tuple(i.strip() for i in args.agents.split(",") if i.strip())
        settings = settings.model_copy(update={"agent_ids": ids})
    try:
        # Fail before connecting anywhere: a misconfigured agent should say so at once.
        specs = resolve_agents(settings)
        for spec in specs:
            check_spec(spec, settings)
    except AgentConfigError as exc:
        configure_logging("agent", settings.log_level, settings.log_dir)
        logging.getLogger("services.agent").critical("agent cannot start: %s", exc)
        sys.exit(2)
    main(process_name([s.id for s in specs]), build, settings)


if __name__ == "__main__":
    run()
