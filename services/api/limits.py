"""The request-size limit (413), enforced before a body is buffered: by Content-Length, and by counting the
bytes of a body sent without one (chunked)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

TOO_LARGE = json.dumps({"error": "too large"}).encode()  # as the app's own 413s


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

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # raised inside the route that reads it: the app's handler answers 413
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send: Any) -> None:
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(TOO_LARGE)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": TOO_LARGE})
