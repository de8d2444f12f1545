"""A season recorded once against a live provider, replayed: same decisions, zero calls."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from services.agent.factory import build_trader
from services.agent.llm import LlmTrader
from services.agent.trader import Outcome, Trader
from services.common.clock import ManualClock
from services.common.contracts import Indicators, MarketSnapshot
from tests.agent.llm_support import keyed_settings, llm_spec
from tests.builders import NOW, portfolio, snapshot, symbol_snapshot
from tests.fakes import openai as gpt
from tests.fakes.openai import FakeOpenAI


def season() -> list[MarketSnapshot]:
    return [
        snapshot(
            symbol_snapshot(
                "BTCUSDT",
                Decimal(50_000 + 100 * n),
                indicators=Indicators(rsi_14=40.0 + n, ema_20=50_000.0),
            ),
            cycle_id=f"c{n}",
        )
        for n in range(5)
    ]


def answer_for(n: int) -> str:
    side = "BUY" if n % 2 == 0 else "HOLD"
    return f'{{"reasoning": "cycle {n}", "actions": [{{"action": "{side}", "symbol": "BTCUSDT", "margin_usd": 10, "leverage": 2}}]}}'  # noqa: E501


async def play(trader: Trader) -> list[tuple[object, ...]]:
    results: list[tuple[object, ...]] = []
    for snap in season():
        answer = await trader.decide(snap, portfolio())
        assert answer.outcome == Outcome.DECIDED, answer.error
        prompt = answer.prompt
        assert prompt is not None
        results.append((answer.actions, answer.reasoning, prompt.sha256, answer.raw_response))
    await trader.close()
    return results


async def test_replay_gives_the_recorded_decisions_without_calling(tmp_path: Path) -> None:
    recordings = tmp_path / "season"
    fake = FakeOpenAI().start()
    try:
        fake.then(*(gpt.completion(answer_for(n)) for n in range(5)))
        live = build_trader(
            llm_spec("openai", fake.base_url, recordings=str(recordings)),
            keyed_settings(),
            ManualClock(NOW),
            {},
        )
        assert isinstance(live, LlmTrader)
        recorded = await play(live)
        assert len(fake.requests) == 5
    finally:
        fake.stop()
    assert len(list(recordings.glob("*.json"))) == 5

    # The provider is gone: a replay that called it would fail.
    spec = llm_spec("replay", "http://127.0.0.1:1/v1", recordings=str(recordings))
    replayer = build_trader(spec, keyed_settings(), ManualClock(NOW), {})
    replayed = await play(replayer)
    assert replayed == recorded
    assert {r[1] for r in replayed} == {f"cycle {n}" for n in range(5)}


async def test_replay_without_a_recording_says_which_prompt_is_missing(tmp_path: Path) -> None:
    spec = llm_spec("replay", "http://127.0.0.1:1/v1", recordings=str(tmp_path))
    replayer = build_trader(spec, keyed_settings(), ManualClock(NOW), {})
    answer = await replayer.decide(season()[0], portfolio())
    assert answer.outcome == Outcome.PROVIDER_ERROR
    assert answer.error is not None and "no recording for prompt sha256" in answer.error
    assert answer.calls == (), "a replay bills nothing"


async def test_a_season_records_every_live_agent_in_its_own_folder(tmp_path: Path) -> None:
    # ARENA_RECORDINGS_DIR: the line-up names no folder, the season gives one per agent.
    fake = FakeOpenAI().start()
    try:
        fake.then(*(gpt.completion(answer_for(n)) for n in range(5)))
        settings = keyed_settings(ARENA_RECORDINGS_DIR=str(tmp_path))
        live = build_trader(llm_spec("openai", fake.base_url), settings, ManualClock(NOW), {})
        recorded = await play(live)
    finally:
        fake.stop()
    assert len(list((tmp_path / "gpt").glob("*.json"))) == 5
    spec = llm_spec("replay", "http://127.0.0.1:1/v1", recordings=str(tmp_path / "gpt"))
    assert await play(build_trader(spec, keyed_settings(), ManualClock(NOW), {})) == recorded
