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


def arena_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the arena's image (``python -m services.<name>``)."""
    return {
        name: service
        for name, service in config["services"].items()
        if "".join(map(str, service.get("command", [])[2:3])).startswith("services.")
    }


def settings_aliases() -> set[str]:
    return {str(field.alias) for field in Settings.model_fields.values()}


def is_service_module(module: str) -> bool:
    """True when ``python -m <module>`` would run a service's ``__main__``."""
    return module.startswith("services.") and (
        importlib.util.find_spec(f"{module}.__main__") is not None
    )
