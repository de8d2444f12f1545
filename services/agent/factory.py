"""From a line-up entry to the trader that runs it (or a disabled one saying why).

The provider SDKs (``anthropic``, ``openai``) are imported only when an entry uses them:
they hold about half of an agent process's memory, and a baseline needs neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from services.agent.circuit import CircuitBreaker
from services.agent.identity import BASELINE_PROVIDER, AgentConfigError, build_strategy
from services.agent.llm import LlmTrader
from services.agent.providers.base import Provider
from services.agent.providers.replay import RecordingProvider, ReplayProvider
from services.agent.scrub import Scrubber
from services.agent.trader import BaselineTrader, DisabledTrader, Trader
from services.common.clock import Clock
from services.common.lineup import AgentSpec
from services.common.settings import Settings

DEFAULT_KEY_ENV = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}
DEEPSEEK_BASE_URL = "https://api.deepseek.com"
# Local servers (Ollama, vLLM, llama.cpp) take any key, but the SDK wants one.
NO_KEY = "not-needed"
PROVIDERS = (*DEFAULT_KEY_ENV, "openai-compatible", "replay", BASELINE_PROVIDER)


def check_spec(spec: AgentSpec, settings: Settings) -> None:
    """Refuse a line-up entry that cannot work whatever the environment holds."""
    if spec.provider not in PROVIDERS:
        raise AgentConfigError(
            f"agent {spec.id!r}: unknown provider {spec.provider!r} "
            f"(providers: {', '.join(PROVIDERS)})"
        )
    if spec.provider == BASELINE_PROVIDER:
        build_strategy(spec, settings)
    if spec.provider == "openai-compatible" and not spec.base_url:
        raise AgentConfigError(f"agent {spec.id!r}: provider openai-compatible needs base_url")
    if spec.provider == "replay" and not spec.recordings:
        raise AgentConfigError(f"agent {spec.id!r}: provider replay needs recordings (a folder)")


def api_key(spec: AgentSpec, settings: Settings, environ: Mapping[str, str]) -> str | None:
    name = spec.api_key_env or DEFAULT_KEY_ENV.get(spec.provider)
    if name is None:
        return NO_KEY
    known = {
        "ANTHROPIC_API_KEY": settings.anthropic_api_key,
        "OPENAI_API_KEY": settings.openai_api_key,
        "DEEPSEEK_API_KEY": settings.deepseek_api_key,
    }
    secret = known.get(name)
    value = secret.get_secret_value() if secret is not None else environ.get(name)
    return value or None


def key_env_name(spec: AgentSpec) -> str:
    return spec.api_key_env or DEFAULT_KEY_ENV.get(spec.provider, "the API key")


def build_trader(
    spec: AgentSpec, settings: Settings, clock: Clock, environ: Mapping[str, str]
) -> Trader:
    check_spec(spec, settings)
    if spec.provider == BASELINE_PROVIDER:
        return BaselineTrader(build_strategy(spec, settings))
    provider = _provider(spec, settings, environ)
    if provider is None:
        return DisabledTrader(f"{key_env_name(spec)} is not set")
    breaker = CircuitBreaker(
        clock, failures=spec.circuit_failures, reset_seconds=spec.circuit_reset_seconds
    )
    return LlmTrader(
        spec=spec,
        provider=provider,
        limits=settings.limits,
        symbols=settings.symbols,
        clock=clock,
        breaker=breaker,
    )


def _provider(spec: AgentSpec, settings: Settings, environ: Mapping[str, str]) -> Provider | None:
    if spec.provider == "replay":
        return ReplayProvider(Path(str(spec.recordings)))
    key = api_key(spec, settings, environ)
    if key is None:
        return None
    # Every key this process knows, not only its own: a proxy may echo any of them.
    scrub = Scrubber([key, *(s.get_secret_value() for s in _secrets(settings))])
    live: Provider
    if spec.provider == "anthropic":
        from services.agent.providers.anthropic_messages import AnthropicProvider

        live = AnthropicProvider(
            api_key=key,
            model=spec.model,
            max_tokens=spec.max_tokens,
            base_url=spec.base_url,
            scrub=scrub,
        )
    else:
        from services.agent.providers.openai_chat import OpenAIChatProvider

        default_url = DEEPSEEK_BASE_URL if spec.provider == "deepseek" else None
        live = OpenAIChatProvider(
            name=spec.provider,
            api_key=key,
            model=spec.model,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            base_url=spec.base_url or default_url,
            json_schema=spec.json_schema,
            scrub=scrub,
        )
    if spec.recordings:
        return RecordingProvider(live, Path(spec.recordings))
    if settings.recordings_dir is not None:
        return RecordingProvider(live, settings.recordings_dir / spec.id)
    return live


def _secrets(settings: Settings) -> list[SecretStr]:
    known = (
        settings.anthropic_api_key,
        settings.openai_api_key,
        settings.deepseek_api_key,
        settings.admin_token,
    )
    return [s for s in known if s is not None]
