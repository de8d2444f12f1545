"""A subscription is on the wire ahead of the round trip that confirms it.

nats-py writes a flush's PING straight to its socket while a SUB just made may still wait
in its buffer; what the bus relies on (``seen_by_server``) is a PING written after the
SUB, so that its PONG means the server has processed the SUB. The bytes the real client
writes to a real server are recorded, not replaced.
"""

from __future__ import annotations

from typing import Any

import nats

from services.common.nats_connection import seen_by_server


async def test_a_ping_follows_the_subscription_on_the_wire(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        transport: Any = nc._transport
        written: list[bytes] = []
        write, writelines = transport.write, transport.writelines

        def record(payload: bytes) -> None:
            written.append(bytes(payload))
            write(payload)

        def record_lines(payloads: list[bytes]) -> None:
            written.extend(bytes(p) for p in payloads)
            writelines(payloads)

        transport.write, transport.writelines = record, record_lines
        await nc.subscribe("arena.test.seen", queue="q")
        await seen_by_server(nc)
        wire = b"".join(written)
        sub = wire.index(b"SUB arena.test.seen q")
        assert b"PING\r\n" in wire[sub:], wire
    finally:
        await nc.close()
