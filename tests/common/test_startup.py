"""A service whose NATS or Postgres is not there at start waits, not ready, and never exits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from devstack.nats_server import EmbeddedNats
from devstack.ports import free_port
from services.common.runner import ServiceHost
from services.common.settings import Settings
from services.ledger.service import build as build_ledger
from services.risk.service import build as build_risk
from tests.support import eventually


@contextlib.asynccontextmanager
async def starting(host: ServiceHost) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(host.start())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await host.stop()


async def _readiness(host: ServiceHost) -> tuple[int, dict[str, bool]]:
    async def port() -> int | None:
        try:
            return host.metrics_port
        except RuntimeError:
            return None

    metrics = await eventually(port, what="the ops endpoint")
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"http://127.0.0.1:{metrics}/readyz")
    return reply.status_code, reply.json()["checks"]


async def test_a_service_started_before_nats_waits_not_ready_then_comes_up(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    settings = make_settings(NATS_URL=f"nats://127.0.0.1:{port}")
    host = ServiceHost("risk", build_risk, settings)
    async with starting(host) as task:

        async def waiting() -> bool:
            code, checks = await _readiness(host)
            return code == 503 and checks.get("nats") is False

        await eventually(waiting, what="not ready while NATS is missing")
        assert not task.done()
        server = EmbeddedNats(tmp_path / "late-nats", port=port)
        server.start()
        try:
            await eventually(task.done, timeout=30, what="started once NATS is up")
            task.result()
            code, checks = await _readiness(host)
            assert code == 200, checks
        finally:
            await host.stop()
            server.stop()


async def test_a_ledger_started_while_postgres_refuses_waits_then_comes_up(
    make_settings: Callable[..., Settings], database_url: str, postgres_admin_url: str
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        host = ServiceHost("ledger", build_ledger, make_settings(DATABASE_URL=database_url))
        async with starting(host) as task:

            async def waiting() -> bool:
                code, checks = await _readiness(host)
                return code == 503 and checks["nats"] and checks.get("service") is False

            await eventually(waiting, what="not ready while Postgres refuses")
            assert not task.done()
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await eventually(task.done, timeout=30, what="started once Postgres lets in")
            task.result()
            code, checks = await _readiness(host)
            assert code == 200, checks
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
