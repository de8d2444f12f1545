"""A bare FastAPI endpoint served the way the gateway serves its API, as a reference.

``python -m bench.bare_http PORT`` serves ``GET /bare`` (a fixed JSON document the size of
a leaderboard of seven agents, serialised once: the framework's own cost and nothing
else) with the gateway's uvicorn set-up (bench/gateway.py
and bench/reads.py compare the API's figures with it, measured in the same run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response

from bench.serving import process, wait_http
from devstack.ports import free_port
from services.common.ops_http import HttpServer, bind_socket

PATH = "/bare"
DOCUMENT: dict[str, Any] = {
    "leaderboard": [
        {"agent_id": f"agent-{n}", "display_name": f"Agent {n}", "equity": "100.00",
         "total_pnl": "0.00", "total_trades": n, "win_rate": 0.5, "rank": n + 1}
        for n in range(7)
    ]
}  # fmt: skip


def app() -> FastAPI:
    api = FastAPI()
    body = json.dumps(DOCUMENT).encode()

    @api.get(PATH)
    async def bare() -> Response:
        return Response(body, media_type="application/json")

    return api


async def _serve(port: int) -> None:
    server = HttpServer(app(), bind_socket("127.0.0.1", port))
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


@contextlib.contextmanager
def bare_server(log: Path, timeout: float = 30) -> Iterator[int]:
    """A bare endpoint in its own process; yields its port."""
    port = free_port()
    args = [sys.executable, "-m", "bench.bare_http", str(port)]
    with process(args, {**os.environ}, log) as proc:
        wait_http(f"http://127.0.0.1:{port}{PATH}", proc, log, timeout)
        yield port


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(int(sys.argv[1])))
