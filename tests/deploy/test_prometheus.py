"""Prometheus' config is valid and the services' /metrics is what it can parse."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.common.settings import Settings
from services.risk.service import build as build_risk
from tests.deploy.files import ROOT, arena_services, compose
from tests.deploy.tools import run_tool
from tests.support import running

CONFIG = ROOT / "deploy/prometheus/prometheus.yml"


def test_promtool_accepts_the_config() -> None:
    result = run_tool("promtool", "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_arena_service_of_compose() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{name}:9100" for name in arena_services(compose())}


async def test_a_running_service_metrics_parse(make_settings: Callable[..., Settings]) -> None:
    async with (
        running("risk", build_risk, make_settings()) as host,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{host.metrics_port}") as http,
    ):
        metrics = await http.get("/metrics")
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
    families = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"arena_risk_verdicts", "arena_messages_consumed"} <= families
    assert ready.status_code == 200 and ready.json()["checks"]["nats"] is True
    assert alive.status_code == 200
