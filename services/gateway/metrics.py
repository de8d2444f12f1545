"""The gateway's Prometheus metrics, and the ASGI pieces that expose and feed them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.metric_set import MetricSet

UNMATCHED_ROUTE = "unmatched"
# Why a WebSocket connection was refused (the label of arena_gateway_ws_clients_refused).
REFUSED_LIMIT = "limit"
REFUSED_ORIGIN = "origin"
# Why a WebSocket client was dropped (the label of arena_gateway_ws_clients_dropped).
DROPPED_QUEUE = "queue"
DROPPED_BYTES = "bytes"
DROPPED_SEND_TIMEOUT = "send_timeout"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        m = MetricSet(registry, "arena_gateway_")
        self.ws_clients = m.gauge("ws_clients", "WebSocket clients connected now.")
        self.ws_messages_sent = m.counter(
            "ws_messages_sent", "Messages sent to WebSocket clients (one per client and message)."
        )
        self.ws_clients_dropped = m.counter(
            "ws_clients_dropped",
            "WebSocket clients disconnected because they did not keep up, by reason: queue "
            "(too many messages queued), bytes (too many bytes queued) or send_timeout.",
            "reason",
        )
        for reason in (DROPPED_QUEUE, DROPPED_BYTES, DROPPED_SEND_TIMEOUT):
            self.ws_clients_dropped.labels(reason)
        self.ws_clients_refused = m.counter(
            "ws_clients_refused",
            "WebSocket connections refused, by reason: limit (too many clients) or origin.",
            "reason",
        )
        for reason in (REFUSED_LIMIT, REFUSED_ORIGIN):
            self.ws_clients_refused.labels(reason)  # both series exist from the start
        self.http_requests = m.counter(
            "http_requests",
            "HTTP requests answered, by route template and status code.",
            "route",
            "status",
        )
        self.http_latency = m.histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            "route",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class HttpMetricsMiddleware:
    """Counts HTTP requests by route *template*, so ids in paths cannot explode the labels."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_and_record)
        finally:
            # The router stores the matched route in the (shared) scope.
            template = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self._metrics.http_requests.labels(template, str(status)).inc()
            self._metrics.http_latency.labels(template).observe(time.perf_counter() - started)


class MetricsEndpoint:
    """``/metrics`` as a raw ASGI app: Starlette routes a class instance without the
    trailing-slash redirect a ``Mount`` would add."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
