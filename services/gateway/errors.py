"""What the gateway answers when a service behind it fails: a status and a message, no trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.common.bus import BusError, RemoteError, Unavailable
from services.gateway.control import ControlDenied

log = logging.getLogger(__name__)

T = TypeVar("T")

# ErrorReply.code of the remote service -> HTTP status of the gateway's answer.
_REMOTE_STATUS = {"not_found": 404, "bad_request": 422, "unavailable": 503, "internal": 502}


class ErrorDetail(BaseModel):
    """Body of every error answer (FastAPI's own shape)."""

    detail: str


class UpstreamError(Exception):
    """A service the gateway asked could not give the answer."""

    def __init__(self, service: str, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.service = service
        self.status_code = status_code
        self.detail = detail

    @classmethod
    def from_bus(cls, service: str, exc: BusError) -> UpstreamError:
        if isinstance(exc, Unavailable):
            return cls(service, 503, f"{service} did not answer: {exc}")
        if isinstance(exc, RemoteError):
            status = _REMOTE_STATUS.get(exc.reply.code, 502)
            if status == 503:
                return cls(service, status, f"{service} is unavailable: {exc.reply.message}")
            if status == 502:
                return cls(service, status, f"{service} failed: {exc.reply.message}")
            return cls(service, status, exc.reply.message)
        return cls(service, 502, f"{service} gave an unreadable answer: {exc}")


class NotFoundError(Exception):
    """Something the path names (an agent, a symbol) does not exist."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorDetail, "description": "A parameter is invalid."},
    502: {"model": ErrorDetail, "description": "The service behind the gateway failed."},
    503: {"model": ErrorDetail, "description": "The service behind the gateway did not answer."},
}


def not_found(description: str) -> dict[int | str, dict[str, object]]:
    """The 404 a route documents when what its path names does not exist."""
    return {404: {"model": ErrorDetail, "description": description}}


async def part_of(name: str, ask: Awaitable[T], unavailable: dict[str, str]) -> T | None:
    """One part of a composed answer: ``None`` (and why, under ``name`` in ``unavailable``)
    when the service asked did not answer, so the other parts still come back."""
    try:
        return await ask
    except UpstreamError as exc:
        unavailable[name] = exc.detail
        return None


async def _upstream_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpstreamError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return JSONResponse({"detail": exc.detail}, status_code=404)


async def _denied(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControlDenied)
    headers = {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    """One readable sentence per bad parameter instead of FastAPI's nested list."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Never a trace to the client; the log has it.
    log.error("unhandled error", exc_info=exc)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UpstreamError, _upstream_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ControlDenied, _denied)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
