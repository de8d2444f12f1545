"""docker-compose.yml, the Dockerfile and .env.example agree with the code and the line-up."""

from __future__ import annotations

import re

from deploy import render
from services.common.lineup import load_lineup
from services.common.settings import Settings
from tests.deploy.files import (
    ROOT,
    arena_jobs,
    arena_services,
    compose,
    is_service_module,
    settings_aliases,
)

STREAM_LIMITS = (
    "stream_max_age_seconds",
    "stream_max_bytes",
    "dlq_max_age_seconds",
    "dlq_max_bytes",
)


def test_generated_files_match_the_lineup_and_the_code() -> None:
    stale = render.stale(render.rendered())
    assert not stale, f"stale deployment files, run `python -m deploy.render`: {stale}"


def test_every_arena_service_runs_a_real_service_module() -> None:
    config = compose()
    services = arena_services(config)
    assert {"market", "risk", "ledger", "gateway"} <= services.keys()
    for name, service in {**services, **arena_jobs(config)}.items():
        command = service["command"]
        assert command[:2] == ["python", "-m"], name
        assert is_service_module(command[2]), f"{name}: no module {command[2]}"


def test_the_dockerfile_command_names_a_real_service() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    commands = re.findall(r'^CMD \["python", "-m", "([\w.]+)"\]', text, re.M)
    assert commands, "the Dockerfile has no CMD"
    assert all(is_service_module(module) for module in commands)
    # The last stage, the default target, is the services' image; each image runs as 10001.
    assert text.rsplit("\nFROM ", 1)[1].startswith("runtime\n")
    assert text.count("USER 10001") == text.count("AS season") + 1 == 2


def test_compose_environment_names_exactly_the_settings() -> None:
    config = compose()
    aliases = settings_aliases()
    used: set[str] = set()
    for name, service in {**arena_services(config), **arena_jobs(config)}.items():
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


def test_every_long_running_service_has_a_health_check_and_a_restart_policy() -> None:
    config = compose()
    jobs = arena_jobs(config)
    for name, service in config["services"].items():
        if name in jobs:
            continue
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
    for name, service in arena_services(config).items():
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
        conditions = service["depends_on"]
        assert conditions["nats"]["condition"] == "service_healthy", name
        # Nothing consumes before the administrator's step has made the streams.
        assert conditions[render.STREAMS_JOB]["condition"] == "service_completed_successfully", name


def test_the_streams_are_made_by_a_one_shot_job_as_the_admin() -> None:
    config = compose()
    jobs = arena_jobs(config)
    assert set(jobs) == {render.STREAMS_JOB}
    job = jobs[render.STREAMS_JOB]
    assert tuple(job["command"]) == render.STREAMS_COMMAND
    assert job["restart"] == "on-failure"
    assert "healthcheck" not in job, "a one-shot job has nothing to probe"
    assert job["depends_on"] == {"nats": {"condition": "service_healthy"}}
    environment = job["environment"]
    assert environment["NATS_URL"].startswith("nats://admin:${NATS_PASSWORD_ADMIN:?")
    assert environment["NATS_URL"].endswith("@nats:4222")
    # It applies the stream limits: they must reach it as they reach the services.
    for field in STREAM_LIMITS:
        alias = str(Settings.model_fields[field].alias)
        assert environment[alias] == config["services"]["ledger"]["environment"][alias], alias


def test_nats_gets_the_password_of_every_user_it_is_configured_with() -> None:
    users = render.users_for(load_lineup(render.LINEUP))
    environment = compose()["services"]["nats"]["environment"]
    # nats-server refuses to start on a password variable it is not given.
    assert set(environment) == {u.password_variable for u in users}
    for variable, value in environment.items():
        assert value == f"${{{variable}:?set {variable} in .env}}", variable
