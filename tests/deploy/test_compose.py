"""docker-compose.yml, the Dockerfile and .env.example agree with the code and the line-up."""

from __future__ import annotations

import re

from deploy import render
from services.common.lineup import load_lineup
from tests.deploy.files import ROOT, arena_services, compose, is_service_module, settings_aliases


def test_generated_files_match_the_lineup_and_the_code() -> None:
    stale = render.stale(render.rendered())
    assert not stale, f"stale deployment files, run `python -m deploy.render`: {stale}"


def test_every_arena_service_runs_a_real_service_module() -> None:
    services = arena_services(compose())
    assert {"market", "risk", "ledger", "gateway"} <= services.keys()
    for name, service in services.items():
        command = service["command"]
        assert command[:2] == ["python", "-m"], name
        assert is_service_module(command[2]), f"{name}: no module {command[2]}"


def test_the_dockerfile_command_names_a_real_service() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    commands = re.findall(r'^CMD \["python", "-m", "([\w.]+)"\]', text, re.M)
    assert commands, "the Dockerfile has no CMD"
    assert all(is_service_module(module) for module in commands)
    assert "USER 10001" in text and text.count("FROM ") == 2


def test_compose_environment_names_exactly_the_settings() -> None:
    services = arena_services(compose())
    aliases = settings_aliases()
    used: set[str] = set()
    for name, service in services.items():
        names = set(service["environment"])
        assert names <= aliases, f"{name} sets unknown settings: {sorted(names - aliases)}"
        used |= names
    assert used == aliases, f"settings missing from compose: {sorted(aliases - used)}"


def test_env_example_lists_every_setting_and_every_required_variable() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = sorted(a for a in settings_aliases() if a not in text)
    assert not missing, f".env.example does not mention {missing}"
    required = set(
        re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    )
    assert required, "compose requires no variable?"
    unlisted = sorted(v for v in required if not re.search(rf"^{v}=", text, re.M))
    assert not unlisted, f".env.example does not set {unlisted}"


def test_one_agent_service_per_active_agent_each_with_its_own_nats_user() -> None:
    services = arena_services(compose())
    agents = {
        s["environment"]["AGENT_ID"]: s
        for s in services.values()
        if s["command"][2] == "services.agent"
    }
    lineup = load_lineup(render.LINEUP)
    assert set(agents) == {a.id for a in lineup.active}
    for agent_id, service in agents.items():
        assert service["environment"]["NATS_URL"].startswith(f"nats://agent-{agent_id}:")


def test_every_arena_service_has_a_health_check_and_a_restart_policy() -> None:
    config = compose()
    for name, service in config["services"].items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
    for name, service in arena_services(config).items():
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
        conditions = service["depends_on"]
        assert conditions["nats"]["condition"] == "service_healthy", name
