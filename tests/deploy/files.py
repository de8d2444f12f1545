"""Reading the deployment files the tests check."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from services.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _arena_commands(config: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """The compose services that run the arena's image (``python -m services.<name> ...``)."""
    found = {}
    for name, service in config["services"].items():
        command = [str(part) for part in service.get("command", [])]
        if command[:2] == ["python", "-m"] and command[2:3] and command[2].startswith("services."):
            found[name] = (service, command)
    return found


def arena_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The long-running arena services: ``python -m services.<name>`` and nothing more."""
    return {name: s for name, (s, command) in _arena_commands(config).items() if len(command) == 3}


def arena_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One-shot steps run with the arena's image: a service module with a sub-command."""
    return {name: s for name, (s, command) in _arena_commands(config).items() if len(command) > 3}


def settings_aliases() -> set[str]:
    return {str(field.alias) for field in Settings.model_fields.values()}


def is_service_module(module: str) -> bool:
    """True when ``python -m <module>`` would run a service's ``__main__``."""
    return module.startswith("services.") and (
        importlib.util.find_spec(f"{module}.__main__") is not None
    )
