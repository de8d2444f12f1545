"""Who this agent process hosts, and how each decides: resolved once, at start-up."""

from __future__ import annotations

from services.agent.baselines import BASELINES, BaselineConfig
from services.agent.strategy import Strategy
from services.common.instruments import load_instruments
from services.common.lineup import AgentSpec, Lineup, LineupError, load_lineup
from services.common.settings import Settings

BASELINE_PROVIDER = "baseline"


class AgentConfigError(ValueError):
    """The agent cannot start as configured; the message says what to change."""


def resolve_agent(settings: Settings) -> AgentSpec:
    """This process's line-up entry, from ``AGENT_ID`` and ``ARENA_AGENTS_FILE``."""
    lineup = _lineup(settings)
    known = ", ".join(a.id for a in lineup.agents)
    if not settings.agent_id:
        raise AgentConfigError(f"AGENT_ID is not set; the line-up has: {known}")
    try:
        return lineup.get(settings.agent_id)
    except KeyError:
        raise AgentConfigError(
            f"AGENT_ID={settings.agent_id!r} is not in {settings.agents_file} (known: {known})"
        ) from None


def resolve_agents(settings: Settings) -> tuple[AgentSpec, ...]:
    """The line-up entries this process hosts: ``ARENA_AGENT_IDS`` (or ``--agents``), else
    the one ``AGENT_ID`` names."""
    if not settings.agent_ids:
        return (resolve_agent(settings),)
    lineup = _lineup(settings)
    repeated = sorted({i for i in settings.agent_ids if settings.agent_ids.count(i) > 1})
    if repeated:
        raise AgentConfigError(f"ARENA_AGENT_IDS names {', '.join(repeated)} more than once")
    unknown = [i for i in settings.agent_ids if i not in {a.id for a in lineup.agents}]
    if unknown:
        known = ", ".join(a.id for a in lineup.agents)
        raise AgentConfigError(
            f"ARENA_AGENT_IDS: {', '.join(map(repr, unknown))} not in {settings.agents_file} "
            f"(known: {known})"
        )
    return tuple(lineup.get(i) for i in settings.agent_ids)


def _lineup(settings: Settings) -> Lineup:
    try:
        return load_lineup(settings.agents_file)
    except LineupError as exc:
        raise AgentConfigError(str(exc)) from exc


def build_strategy(spec: AgentSpec, settings: Settings) -> Strategy:
    """The baseline strategy the spec names (``provider = "baseline"``)."""
    if spec.provider != BASELINE_PROVIDER:
        raise AgentConfigError(
            f"agent {spec.id!r}: provider {spec.provider!r} is not a baseline "
            f"(a baseline has provider = {BASELINE_PROVIDER!r})"
        )
    factory = BASELINES.get(spec.model)
    if factory is None:
        raise AgentConfigError(
            f"agent {spec.id!r}: no baseline named {spec.model!r} "
            f"(baselines: {', '.join(BASELINES)})"
        )
    return factory(
        BaselineConfig(
            agent_id=spec.id,
            limits=settings.limits,
            symbols=settings.symbols,
            seed=settings.seed if spec.seed is None else spec.seed,
            instruments=load_instruments(settings.instruments_file),
        )
    )
