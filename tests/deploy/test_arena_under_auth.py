"""The whole arena runs with one NATS user per process, and Grafana's queries name its metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.agent.service import build as build_agent
from services.agent.service import consumer_name
from services.common.runner import ServiceHost
from services.common.settings import Settings
from services.common.streams import apply_streams
from services.gateway.service import build as build_gateway
from services.ledger.service import build as build_ledger
from services.market.service import build as build_market
from services.risk.service import build as build_risk
from tests.deploy.files import ROOT
from tests.deploy.nats_server import auth_nats
from tests.support import eventually, running

LINEUP = Path(__file__).with_name("lineup.toml")
DASHBOARD = ROOT / "deploy/grafana/dashboards/arena.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}


def exported_names(text: str) -> set[str]:
    """Every series name a /metrics page declares, labelled or not, observed or not."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\barena_[a-z0-9_]+", expr)}


async def test_a_cycle_completes_with_per_service_users_and_grafana_names_real_metrics(
    tmp_path: Path, make_settings: Callable[..., Settings], database_url: str
) -> None:
    with auth_nats(tmp_path, LINEUP) as nats:

        def settings(user: str, **extra: object) -> Settings:
            return make_settings(
                NATS_URL=nats.url(user),
                ARENA_AGENTS_FILE=str(LINEUP),
                MARKET_SOURCE="simulator",
                DATABASE_URL=database_url,
                **extra,
            )

        # The streams are the administrator's: no service user may create or change them.
        await apply_streams(settings("admin"))
        async with AsyncExitStack() as stack:
            hosts: list[ServiceHost] = [
                await stack.enter_async_context(
                    running("ledger", build_ledger, settings("ledger"))
                ),
                await stack.enter_async_context(running("risk", build_risk, settings("risk"))),
            ]
            for agent_id in ("momentum", "random"):
                name = consumer_name(agent_id)
                hosts.append(
                    await stack.enter_async_context(
                        running(name, build_agent, settings(name, AGENT_ID=agent_id))
                    )
                )
            hosts.append(
                await stack.enter_async_context(
                    running("gateway", build_gateway, settings("gateway"))
                )
            )
            hosts.append(
                await stack.enter_async_context(running("market", build_market, settings("market")))
            )
            ledger = hosts[0]

            def completed() -> float:
                return (
                    ledger.registry.get_sample_value(
                        "arena_ledger_cycles_completed_total", {"timed_out": "false"}
                    )
                    or 0.0
                )

            await eventually(completed, timeout=30, what="a cycle completed in time under auth")

            exported: set[str] = set()
            async with httpx.AsyncClient() as http:
                for host in hosts:
                    base = f"http://127.0.0.1:{host.metrics_port}"
                    ready = await http.get(f"{base}/readyz")
                    assert ready.status_code == 200, (host.name, ready.text)
                    exported |= exported_names((await http.get(f"{base}/metrics")).text)

    unknown = sorted(dashboard_metrics() - exported)
    assert not unknown, f"the Grafana dashboard queries metrics no service exports: {unknown}"
