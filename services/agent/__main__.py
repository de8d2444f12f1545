"""``AGENT_ID=<id> python -m services.agent``: one process per agent of the line-up."""

from __future__ import annotations

import logging
import sys

from services.agent.factory import check_spec
from services.agent.identity import AgentConfigError, resolve_agent
from services.agent.service import build, consumer_name
from services.common.logs import configure_logging
from services.common.runner import load_settings, main


def run() -> None:
    settings = load_settings("agent")
    try:
        # Fail before connecting anywhere: a misconfigured agent should say so at once.
        spec = resolve_agent(settings)
        check_spec(spec, settings)
    except AgentConfigError as exc:
        configure_logging("agent", settings.log_level, settings.log_dir)
        logging.getLogger("services.agent").critical("agent cannot start: %s", exc)
        sys.exit(2)
    main(consumer_name(spec.id), build, settings)


if __name__ == "__main__":
    run()
