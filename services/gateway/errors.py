"""What the gateway answers when a service behind it fails: a status and a message, no trace."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.common.bus import BusError, RemoteError, Unavailable

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


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    502: {"model": ErrorDetail, "description": "The service behind the gateway failed."},
    503: {"model": ErrorDetail, "description": "The service behind the gateway did not answer."},
}


async def _upstream_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpstreamError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UpstreamError, _upstream_error)
