"""The request-size limit (413), enforced before a body is buffered: by Content-Length, and by counting the
bytes of a body sent without one (chunked)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

TOO_LARGE = json.dumps({"error": "too large", "reason": "the request body is larger than the limit"}).encode()


class _TooLarge(HTTPException):
    """Raised while a route reads a body that turns out too long; the app's HTTP error handler answers 413."""

    def __init__(self) -> None:
        super().__init__(413)


class BodyLimitMiddleware:
    """Pure ASGI middleware: answers 413 to any HTTP request whose body exceeds ``limit`` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    await self._refuse(send)
                    return
        seen = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    @staticmethod
    async def _refuse(send: Any) -> None:
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(TOO_LARGE)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": TOO_LARGE})
