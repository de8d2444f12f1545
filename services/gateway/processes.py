"""The arena's processes as the local supervisor reports them (``make run``).

Under ``make run`` supervisord restarts a process that dies, and its event listener keeps a
JSON file of each process's state and restart count; ``/health`` shows it. Elsewhere
(docker-compose, Kubernetes) the orchestrator keeps those counts and no file is set.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)


class ProcessState(BaseModel):
    state: str
    restarts: int
    unexpected_exits: int
    since: str


class ProcessStatus:
    def __init__(self, path: Path | None) -> None:
        self._path = path

    def read(self) -> dict[str, ProcessState] | None:
        """Every process's state, or None when no supervisor reports here."""
        if self._path is None:
            return None
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            return {name: ProcessState.model_validate(v) for name, v in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("cannot read the process status file %s: %s", self._path, exc)
            return {}
