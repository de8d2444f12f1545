"""A baseline agent process never loads a provider SDK; an LLM entry loads only its own.

Checked in a fresh interpreter (``sys.modules`` of the test process holds whatever other
tests imported): the agent's entry point is imported and the entry's trader built, as
``python -m services.agent`` does before it connects anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.common.settings import PROJECT_ROOT

SDKS = ("anthropic", "openai")

PROGRAM = """
import json, os, sys
import services.agent.__main__
from services.agent.factory import build_trader
from services.agent.identity import resolve_agent
from services.common.clock import SystemClock
from services.common.settings import Settings

settings = Settings()
trader = build_trader(resolve_agent(settings), settings, SystemClock(), os.environ)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"anthropic", "openai"})))
"""

LINEUP = """
[[agents]]
id = "momentum"
display_name = "EMA momentum"
provider = "baseline"
model = "ema-cross"

[[agents]]
id = "claude"
display_name = "Claude"
provider = "anthropic"
model = "claude-sonnet-4-5"

[[agents]]
id = "gpt"
display_name = "GPT"
provider = "openai"
model = "gpt-4o"
"""


def _sdks_loaded(tmp_path: Path, agent_id: str) -> list[str]:
    lineup = tmp_path / "agents.toml"
    lineup.write_text(LINEUP)
    env = {
        **os.environ,
        "ARENA_AGENTS_FILE": str(lineup),
        "AGENT_ID": agent_id,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENAI_API_KEY": "sk-test",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_a_baseline_agent_imports_no_provider_sdk(tmp_path: Path) -> None:
    assert _sdks_loaded(tmp_path, "momentum") == []


def test_an_llm_agent_imports_its_own_sdk_only(tmp_path: Path) -> None:
    assert _sdks_loaded(tmp_path, "claude") == ["anthropic"]
    assert _sdks_loaded(tmp_path, "gpt") == ["openai"]
