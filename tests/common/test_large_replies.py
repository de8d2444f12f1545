"""A request-reply answer over NATS's max payload comes in parts and is put back together."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.common.bus import Bus, BusMetrics, NotFound, RemoteError, Unavailable
from services.common.contracts import EquityQuery


async def test_a_reply_of_any_size_arrives_whole(nats_url: str) -> None:
    server = await Bus.connect(nats_url, "ledger", BusMetrics(CollectorRegistry()))
    client = await Bus.connect(nats_url, "gateway", BusMetrics(CollectorRegistry()))
    try:
        limit = client._nc.max_payload

        async def answer(query: EquityQuery) -> bytes:
            if query.agent_id == "nobody":
                raise NotFound("no account for agent 'nobody'")
            # Sizes either side of one message, and several parts.
            sizes = {"small": 10, "edge": limit - 1024, "large": 3 * limit + 17}
            size = sizes[query.agent_id or "small"]
            return bytes(range(256)) * (size // 256) + b"x" * (size % 256)

        await server.serve("arena.test.large", EquityQuery, answer)
        for agent in ("small", "edge", "large"):
            data = await client.request_bytes("arena.test.large", EquityQuery(agent_id=agent))
            assert data == await answer(EquityQuery(agent_id=agent))
        error = Bus.reply_error(
            "arena.test.large",
            await client.request_bytes("arena.test.large", EquityQuery(agent_id="nobody")),
        )
        assert isinstance(error, RemoteError) and error.reply.code == "not_found"
        with pytest.raises(Unavailable):
            await client.request_bytes("arena.test.nobody", EquityQuery(), timeout=0.5)
    finally:
        await client.close()
        await server.close()
