"""Connecting to NATS: retried until the server answers, then reconnected forever."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client as NatsClient

from services.common.bus_errors import BusError
from services.common.settings import Settings

log = logging.getLogger(__name__)

# Between two connection attempts: short at first, then at most this long.
MAX_RETRY_WAIT_SECONDS = 5.0


async def connect_nats(
    url: str,
    name: str,
    *,
    credentials: str | None = None,
    retry_seconds: float | None = None,
) -> NatsClient:
    """A connection to ``url``; tries for ``retry_seconds`` (None: until it works).

    A service keeps trying for as long as it takes (NATS may start after it, or be
    restarting) and reports not ready meanwhile; a one-shot command gives up.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    connected: list[NatsClient] = []

    async def on_disconnected() -> None:
        if connected and (connected[0].is_closed or connected[0].is_draining):
            return  # our own close or drain: nothing to report
        log.warning("nats: disconnected, reconnecting")

    async def on_reconnected() -> None:
        log.info("nats: reconnected")

    loop = asyncio.get_running_loop()
    deadline = None if retry_seconds is None else loop.time() + retry_seconds
    wait = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            client = await nats.connect(
                servers=[url],
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                user_credentials=credentials,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
            connected.append(client)
            return client
        except Exception as exc:
            if deadline is not None and loop.time() >= deadline:
                raise BusError(f"cannot connect to NATS at {redact_url(url)}: {exc}") from exc
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "NATS at %s not reachable (%s), still trying (attempt %d)",
                    redact_url(url),
                    exc or type(exc).__name__,
                    attempt,
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, MAX_RETRY_WAIT_SECONDS)


async def connect_command(settings: Settings, name: str, retry_seconds: float) -> NatsClient:
    """A one-shot command's connection: ``settings``' URL and credentials, tried for
    ``retry_seconds``."""
    return await connect_nats(
        settings.nats_url,
        name,
        credentials=str(settings.nats_creds) if settings.nats_creds else None,
        retry_seconds=retry_seconds,
    )


def redact_url(url: str) -> str:
    """``url`` without its secret (a password, or a token in the user part), for logs."""
    parts = urlsplit(url)
    if parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.password is not None else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


async def seen_by_server(nc: NatsClient) -> None:
    """Return once the server has processed everything written on ``nc`` so far (a
    subscription just made, above all).

    nats-py's ``flush()`` writes its PING straight to the socket, while a SUB just made
    still waits in the client's buffer for its flusher task: the PONG can come back before
    the server has seen the SUB, and a request another connection sends then finds no
    responder. The first round trip lets the flusher write the buffer; the second one's
    PING follows it on the wire, so its PONG comes after the SUB was processed.
    """
    await nc.flush()
    await nc.flush()
