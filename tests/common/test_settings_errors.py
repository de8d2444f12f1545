"""A settings error names the variable and the problem, and never prints a value."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.settings import Settings, settings_problems

WINDOW = 5  # no run of this many characters of a secret may reach the terminal


def secret_env() -> tuple[dict[str, str], list[str]]:
    """Every secret the arena reads, each with a fresh random part, and those parts."""
    own = {name: secrets.token_urlsafe(24) for name in ("admin", "openai", "claude", "db", "nats")}
    own["deepseek"] = secrets.token_hex(16)
    env = {
        "ARENA_ADMIN_TOKEN": own["admin"],
        "OPENAI_API_KEY": f"sk-proj-{own['openai']}",
        "ANTHROPIC_API_KEY": f"sk-ant-api03-{own['claude']}",
        "DEEPSEEK_API_KEY": f"sk-{own['deepseek']}",
        "DATABASE_URL": f"postgresql://arena:{own['db']}@127.0.0.1:1/arena",
        "NATS_URL": f"nats://arena:{own['nats']}@127.0.0.1:1",
    }
    return env, list(own.values())


def leaked(output: str, parts: list[str]) -> list[str]:
    """Every run of WINDOW characters of a secret's random part found in ``output``."""
    return [
        part[i : i + WINDOW]
        for part in parts
        for i in range(len(part) - WINDOW + 1)
        if part[i : i + WINDOW] in output
    ]


# Fine one by one, wrong together: a check across variables.
INCONSISTENT = {"ARENA_CYCLE_SECONDS": "5", "ARENA_DECISION_SECONDS": "5"}
COMMANDS = {
    "risk": ["services.risk"],
    "agent": ["services.agent"],
    "devstack": ["devstack", "run", "--data-dir", "{tmp}/arena-data"],
}


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    args = [part.replace("{tmp}", str(cwd)) for part in command]
    # The working directory has no .env: only what the test sets is read.
    return subprocess.run(
        [sys.executable, "-m", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            {"ARENA_CYCLE_SECONDS": "soon", "GATEWAY_PORT": "99999"},
            [
                "ARENA_CYCLE_SECONDS: Input should be a valid number, unable to parse string "
                "as a number",
                "GATEWAY_PORT: Input should be less than or equal to 65535",
            ],
        ),
        # A check across variables: pydantic printed every variable it had read, cut to
        # its first and last characters, where the API keys and the admin token came.
        (INCONSISTENT, ["ARENA_DECISION_SECONDS must be shorter than ARENA_CYCLE_SECONDS"]),
    ],
    ids=["bad-values", "inconsistent"],
)
def test_a_bad_setting_is_one_line_per_variable_and_no_secret(
    command: list[str], bad: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    env, parts = secret_env()
    done = run(command, {**env, **bad}, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert leaked(output, parts) == []
    lines = [line.removeprefix("[arena]").strip() for line in done.stderr.splitlines()]
    problems = lines[lines.index(next(s for s in lines if "invalid configuration" in s)) + 1 :]
    assert problems == expected
    assert "Traceback" not in output
    assert not (tmp_path / "arena-data").exists(), "nothing is started on a bad setting"


def test_the_ledger_command_prints_no_secret_either(tmp_path: Path) -> None:
    env, parts = secret_env()
    done = run(["services.ledger", "migrate"], {**env, **INCONSISTENT}, tmp_path)
    assert done.returncode == 2
    assert "ARENA_DECISION_SECONDS must be shorter" in done.stderr
    assert leaked(done.stdout + done.stderr, parts) == []


def test_a_bad_value_in_a_secret_variable_names_it_without_the_value() -> None:
    # From the environment every secret is a valid string; a value given in code can
    # still be wrong, and must not be printed either.
    value = 840_213_977_105_552_391
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, OPENAI_API_KEY=value, ARENA_CYCLE_SECONDS="soon")
    assert settings_problems(caught.value) == (
        "ARENA_CYCLE_SECONDS: Input should be a valid number, unable to parse string as a number",
        "OPENAI_API_KEY: Input should be a valid string",
    )
    # What a traceback shows.
    for text in (str(caught.value), repr(caught.value)):
        assert "OPENAI_API_KEY" in text
        assert str(value)[:WINDOW] not in text


def test_secrets_are_never_in_a_check_across_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env, parts = secret_env()
    for name, value in {**env, **INCONSISTENT}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert settings_problems(caught.value) == (
        "ARENA_DECISION_SECONDS must be shorter than ARENA_CYCLE_SECONDS",
    )
    assert leaked(str(caught.value), parts) == []
