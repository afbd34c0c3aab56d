"""Protect a FastAPI or Starlette route with an API key.

Example::

    from fastapi import Depends, FastAPI
    from keyrack import Keyrack, KeyGuard, VerifyResult
    from keyrack.guard import install_problem_handler

    ApiKeyDep = Annotated[VerifyResult, Depends(KeyGuard())]   # uses app.state.keyrack

    @asynccontextmanager
    async def lifespan(app):
        app.state.keyrack = await Keyrack.open()

Yield:
        await app.state.keyrack.close()

    app = FastAPI(lifespan=lifespan)
    install_problem_handler(app)            # 401 answers as problem+json

    @app.get("/v1/chat")
    async def chat(key: ApiKeyDep) -> dict[str, str]:
        return {"key_id": key.record.key_id}
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from keyrack.domain.verification import VerifyResult
from keyrack.embedded import Keyrack
from keyrack.errors import ApiKeyRejected


class KeyGuard:
    """A dependency that verifies the request's key and returns the ``VerifyResult``.

    The key is read from ``Authorization: Bearer <key>`` or, failing that, ``X-API-Key``. The
    request's facts (``"METHOD /path"``, client address, ``Origin``, TLS) are passed to verify,
    so a key's IP, origin, endpoint and TLS policy apply. Anything but ``VALID`` raises
    ``ApiKeyRejected``: 429 for a limit, 403 for a policy or permission refusal, else 401.

    Args:
        keyrack: The open keyrack to verify with; by default ``request.app.state.keyrack``.
        tenant_id: Accept only keys of this tenant.
        permissions: A permission query the key must satisfy (``"chat.write"``).
    """

    def __init__(
        self,
        keyrack: Keyrack | None = None,
        *,
        tenant_id: str | None = None,
        permissions: str | None = None,
    ) -> None:
        self._keyrack = keyrack
        self._tenant_id = tenant_id
        self._permissions = permissions

    @staticmethod
    def presented_key(request: Request) -> str:
        """The key a request carries, or an empty string."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return request.headers.get("x-api-key", "").strip()

    async def __call__(self, request: Request) -> VerifyResult:
        """Verify the request's key.

        Raises:
            ApiKeyRejected: The key is missing or not valid.
        """
        keyrack = self._keyrack or request.app.state.keyrack
        client = request.client
        result = await keyrack.verify(
            self.presented_key(request),
            tenant_id=self._tenant_id,
            permissions=self._permissions,
            endpoint=f"{request.method} {request.url.path}",
            ip=None if client is None else client.host,
            origin=request.headers.get("origin"),
            tls=request.url.scheme in {"https", "wss"},
        )
        if not result.valid:
            raise ApiKeyRejected(result.outcome.value)
        return result


_LIMITED = frozenset({"RATE_LIMITED", "CONCURRENCY_LIMITED", "USAGE_EXCEEDED", "BUDGET_EXCEEDED"})
_REFUSED = frozenset({"FORBIDDEN", "INSUFFICIENT_PERMISSIONS", "TOKENS_EXCEEDED"})
_TITLES = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}


async def _rejected(_request: Request, exc: Exception) -> Response:
    outcome = exc.details.get("outcome") if isinstance(exc, ApiKeyRejected) else None
    status = 429 if outcome in _LIMITED else 403 if outcome in _REFUSED else 401
    body = {
        "type": "about:blank",
        "title": _TITLES[status],
        "status": status,
        "detail": "a valid API key is required"
        if status == 401
        else f"the API key may not make this request ({outcome})",
        "code": ApiKeyRejected.code,
        "outcome": outcome,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def install_problem_handler(app: Starlette) -> None:
    """Answer ``ApiKeyRejected`` with a 401 problem+json body on ``app``."""
    app.add_exception_handler(ApiKeyRejected, _rejected)
