"""Start-up: which line-up entry this process is, and which strategy it runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from services.agent.baselines.ema_cross import EmaCross
from services.agent.factory import check_spec
from services.agent.identity import AgentConfigError, build_strategy, resolve_agent
from services.common.lineup import AgentSpec
from services.common.settings import PROJECT_ROOT, Settings


def test_resolves_the_agent_named_by_agent_id(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(AGENT_ID="momentum")
    spec = resolve_agent(settings)
    assert (spec.id, spec.model) == ("momentum", "ema-cross")
    assert isinstance(build_strategy(spec, settings), EmaCross)


@pytest.mark.parametrize("agent_id", [None, "nobody"])
def test_missing_or_unknown_agent_id_names_the_known_ones(
    make_settings: Callable[..., Settings], agent_id: str | None
) -> None:
    settings = make_settings(AGENT_ID=agent_id)
    with pytest.raises(AgentConfigError, match="momentum, mean-reversion, random"):
        resolve_agent(settings)


@pytest.mark.parametrize(
    ("provider", "model", "check", "refusal"),
    [
        (
            "baseline",
            "martingale",
            build_strategy,
            "ema-cross, rsi-reversion, random, buy-and-hold",
        ),
        ("anthropic", "claude", build_strategy, "provider 'anthropic' is not a baseline"),
        ("carrier-pigeon", "m", check_spec, "unknown provider 'carrier-pigeon'"),
        ("openai-compatible", "llama3", check_spec, "needs base_url"),
        ("replay", "m", check_spec, "needs recordings"),
    ],
)
def test_unknown_baseline_or_provider_is_refused(
    make_settings: Callable[..., Settings],
    provider: str,
    model: str,
    check: Callable[[AgentSpec, Settings], object],
    refusal: str,
) -> None:
    spec = AgentSpec(id="x", display_name="x", provider=provider, model=model)
    with pytest.raises(AgentConfigError, match=refusal):
        check(spec, make_settings())


def test_the_process_refuses_to_start_without_agent_id(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NATS_URL": "nats://127.0.0.1:1", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "services.agent"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"AGENT_ID is not set" in done.stdout
    assert b"momentum, mean-reversion, random" in done.stdout
