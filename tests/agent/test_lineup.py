"""The shipped line-up: the three models of the specification and the baselines, all buildable."""

from __future__ import annotations

from services.agent.factory import build_trader, check_spec
from services.agent.trader import BaselineTrader, DisabledTrader
from services.common.clock import ManualClock
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT, Settings
from tests.builders import NOW

SHIPPED = PROJECT_ROOT / "config" / "agents.toml"


def test_the_default_lineup_has_the_three_models_and_the_baselines() -> None:
    lineup = load_lineup(SHIPPED)
    providers = {a.id: a.provider for a in lineup.active}
    assert providers["claude"] == "anthropic"
    assert providers["deepseek"] == "deepseek"
    assert providers["gpt-4o"] == "openai"
    assert sorted(a.model for a in lineup.active if a.provider == "baseline") == [
        "buy-and-hold",
        "ema-cross",
        "random",
        "rsi-reversion",
    ]
    for agent in lineup.active:
        if agent.provider != "baseline":
            assert agent.price_input_per_mtok > 0 and agent.price_output_per_mtok > 0


def test_without_keys_the_models_are_disabled_and_the_baselines_trade() -> None:
    settings = Settings(
        _env_file=None, ANTHROPIC_API_KEY=None, OPENAI_API_KEY=None, DEEPSEEK_API_KEY=None
    )
    for agent in load_lineup(SHIPPED).active:
        check_spec(agent, settings)
        trader = build_trader(agent, settings, ManualClock(NOW), {})
        if agent.provider == "baseline":
            assert isinstance(trader, BaselineTrader)
        else:
            assert isinstance(trader, DisabledTrader)
            assert trader.disabled_reason == f"{agent.api_key_env} is not set"
