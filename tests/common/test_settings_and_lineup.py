"""Settings from the environment and the line-up file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.lineup import LineupError, load_lineup
from services.common.settings import DEFAULT_SYMBOLS, PROJECT_ROOT, Settings, TradingLimits


def test_defaults_follow_the_specification() -> None:
    s = Settings(_env_file=None)
    assert s.cycle_seconds == 300
    assert s.initial_balance == Decimal(100)
    assert s.symbols == DEFAULT_SYMBOLS
    limits = s.limits
    assert (limits.min_margin_usd, limits.max_margin_usd) == (Decimal(10), Decimal(30))
    assert limits.max_leverage == 10
    assert limits.max_open_positions == 3
    assert limits.taker_fee_rate == Decimal("0.0005")
    assert limits == TradingLimits()
    assert s.decision_window.total_seconds() == 240


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.setenv("ARENA_CYCLE_SECONDS", "5")
    monkeypatch.setenv("ARENA_MAX_LEVERAGE", "5")
    s = Settings(_env_file=None)
    assert s.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.limits.max_leverage == 5
    assert s.decision_window.total_seconds() == 4


def test_bad_values_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_CYCLE_SECONDS", "-1")
    with pytest.raises(ValidationError, match="ARENA_CYCLE_SECONDS"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ARENA_MIN_MARGIN_USD": "40"}, "ARENA_MIN_MARGIN_USD <= ARENA_MAX_MARGIN_USD"),
        ({"ARENA_MIN_MARGIN_USD": "0"}, "0 < ARENA_MIN_MARGIN_USD"),
        ({"ARENA_CYCLE_SECONDS": "5", "ARENA_DECISION_SECONDS": "5"}, "must be shorter"),
    ],
)
def test_inconsistent_limits_are_refused(
    env: dict[str, str], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=error):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("url", "pooler"),
    [
        ("postgresql://u:p@db.x.supabase.co:5432/postgres", False),
        ("postgresql://u:p@aws-0-eu.pooler.supabase.com:6543/postgres", True),
    ],
)
def test_pooler_is_detected_from_the_url(url: str, pooler: bool) -> None:
    assert Settings(_env_file=None, DATABASE_URL=url).uses_pooler is pooler


def test_shipped_lineup_loads() -> None:
    lineup = load_lineup(PROJECT_ROOT / "config" / "agents.toml")
    providers = {a.provider for a in lineup.active}
    # The specification's three models, plus baselines that need no key.
    assert {"anthropic", "deepseek", "openai", "baseline"} <= providers
    with pytest.raises(KeyError, match="known"):
        lineup.get("nobody")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[agents]\n", "not valid TOML"),
        ('[[agents]]\nid = "Bad Id"\ndisplay_name = "x"\nprovider = "baseline"\nmodel = "m"\n',
         "invalid"),
        ("agents = []\n", "lists no agent"),
        ('[[agents]]\nid = "a"\ndisplay_name = "x"\nprovider = "baseline"\nmodel = "m"\n' * 2,
         "repeats"),
    ],
)  # fmt: skip
def test_bad_lineup_files_say_what_is_wrong(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    with pytest.raises(LineupError, match=error):
        load_lineup(path)


def test_missing_lineup_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(LineupError, match="ARENA_AGENTS_FILE"):
        load_lineup(tmp_path / "missing.toml")
