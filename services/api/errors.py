"""Every error the API answers, mapped in one place: short JSON bodies, never a trace, path or library name.

401 and 403 carry no detail (which keys exist is nobody's business); 422 names the field and the
problem; anything unexpected is logged here with its traceback and answered as a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraudstream.model.errors import InputError
from fraudstream.services.stores.alerts.base import AlertNotFound

log = logging.getLogger(__name__)

PHRASES = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found", 405: "method not allowed",
           409: "conflict", 413: "too large", 415: "unsupported media type", 422: "invalid request",
           429: "too many requests", 503: "not ready"}


def problem(status: int, field: str | None = None, reason: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every refusal uses."""
    body: dict[str, Any] = {"error": PHRASES.get(status, "error")}
    if field is not None:
        body["field"] = field
    if reason is not None:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=headers)


class ApiError(InputError):
    """A request the API refuses: raised by routes to answer ``status`` (with the field and the reason)."""

    def __init__(self, status: int, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(status)
        self.status, self.field, self.reason = status, field, reason


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _reason(item: dict[str, Any]) -> str:
    kind = item.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "json_invalid":
        return "not valid JSON"
    return str(item.get("msg", "is not valid")).lower()


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if error.status == 429 else None
        return problem(error.status, error.field, error.reason, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        if first.get("type") == "json_invalid":  # its loc holds the character position, not a field
            return problem(422, "body", _reason(first))
        return problem(422, _field(tuple(first.get("loc", ()))), _reason(first))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's only 400: a body it could not parse (not UTF-8), as invalid JSON
            return problem(422, "body", "not valid JSON")
        return problem(error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(AlertNotFound)
    async def not_found(request: Request, error: AlertNotFound) -> JSONResponse:
        return problem(404)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)
