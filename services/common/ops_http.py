"""Each service's operations endpoint: ``/metrics``, ``/healthz`` (alive), ``/readyz``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the service runner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving, so a port of 0 resolves to a known free port."""
    # IPPROTO_TCP lets asyncio set TCP_NODELAY; without it Nagle's algorithm and delayed
    # ACKs add about 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def cut_stalled_peers(sock: socket.socket, seconds: float) -> bool:
    """Have the kernel abort connections whose peer takes no data for ``seconds``.

    Closing a connection waits until its send buffer has drained, which for a peer that
    stopped reading is never: the connection and its buffered bytes would stay until the
    peer goes away. TCP_USER_TIMEOUT (Linux) bounds that wait, including a zero window;
    accepted connections inherit it from the listening socket. Returns False where the
    option does not exist.
    """
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None:
        return False
    sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))
    return True


def ops_app(registry: CollectorRegistry, ready: Callable[[], dict[str, bool]]) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        checks = ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


GRACEFUL_SHUTDOWN_SECONDS = 5


class HttpServer:
    """Serve an ASGI app on a pre-bound socket inside the running event loop."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        self._sock = sock
        # A client that keeps its connection open must not hold the service's exit.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
