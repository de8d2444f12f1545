"""A tiny local HTTP server that answers from a script: the base of the provider fakes.

Each request takes the next scripted :class:`Reply` (or the default one once the script
is used up) and is recorded, so a test can check what the real SDK sent.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    status: int = 200
    # JSON, text, or a function of the request (an error that quotes the key it was sent).
    body: Any = None
    # Seconds before answering: a slow model, or one that never answers in time.
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


# A model's answer that holds: what a provider's fake answers unless a test says otherwise.
HOLD_ANSWER = '{"reasoning": "calm", "actions": [{"action": "HOLD"}]}'


class ScriptedServer:
    # What the provider's SDK is given after the server's address as its base URL.
    api_path = ""

    def __init__(self, default: Reply) -> None:
        self.default = default
        self.script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.api_path}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cuts every pending delay short
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def then(self, *replies: Reply) -> Self:
        with self._lock:
            self.script.extend(replies)
        return self

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            return self.script.popleft() if self.script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = Recorded("POST", self.path, headers, body)
                reply = server._next(recorded)
                if reply.delay and server._stopping.wait(reply.delay):
                    return
                answer = reply.body(recorded) if callable(reply.body) else reply.body
                payload = (
                    answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
