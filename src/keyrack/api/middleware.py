"""Pure-ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

``GuardMiddleware`` assigns a request id, refuses oversized headers (431) and bodies (413).
"""

from __future__ import annotations

import secrets
from typing import Final

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyrack.api import problems

MAX_BODY_BYTES: Final = 1024 * 1024
MAX_HEADER_BYTES: Final = 16 * 1024
_REQUEST_ID_MAX: Final = 128


def _refusal(status: int, code: str, detail: str, request_id: str) -> Response:
    return problems.problem(
        status,
        code=code,
        detail=detail,
        request_id=request_id,
        # Answered before the app: add the id here, and close (the body may be unread).
        headers={"x-request-id": request_id, "connection": "close"},
    )


class GuardMiddleware:
    """Request ids and size limits for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        header_bytes = 0
        declared = -1
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id" and len(value) <= _REQUEST_ID_MAX and value.isascii():
                request_id = value.decode()
            elif name == b"content-length":
                declared = int(value) if value.isdigit() else MAX_BODY_BYTES + 1
        if not request_id or not request_id.isprintable():
            request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        if header_bytes > MAX_HEADER_BYTES:
            refusal = _refusal(
                431, "request.headers_too_large", "request headers exceed 16 KiB", request_id
            )
            await refusal(scope, receive, send)
            return
        if declared > MAX_BODY_BYTES:
            refusal = _refusal(
                413, "request.body_too_large", "request body exceeds 1 MiB", request_id
            )
            await refusal(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    # Raised inside the app so its problem handler renders the 413.
                    raise HTTPException(413, "request body exceeds 1 MiB")
            return message

        rid = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, limited_receive, send_with_id)
