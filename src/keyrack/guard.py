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

    The key is read from ``Authorization: Bearer <key>`` or, failing that, ``X-API-Key``.
    Anything but ``VALID`` raises ``ApiKeyRejected`` (401).

    Args:
        keyrack: The open keyrack to verify with; by default ``request.app.state.keyrack``.
        tenant_id: Accept only keys of this tenant.
    """

    def __init__(self, keyrack: Keyrack | None = None, *, tenant_id: str | None = None) -> None:
        self._keyrack = keyrack
        self._tenant_id = tenant_id

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
        result = await keyrack.verify(self.presented_key(request), tenant_id=self._tenant_id)
        if not result.valid:
            raise ApiKeyRejected(result.outcome.value)
        return result


async def _rejected(_request: Request, exc: Exception) -> Response:
    outcome = exc.details.get("outcome") if isinstance(exc, ApiKeyRejected) else None
    body = {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "a valid API key is required",
        "code": ApiKeyRejected.code,
        "outcome": outcome,
    }
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/problem+json",
        headers={"WWW-Authenticate": "Bearer"},
    )


def install_problem_handler(app: Starlette) -> None:
    """Answer ``ApiKeyRejected`` with a 401 problem+json body on ``app``."""
    app.add_exception_handler(ApiKeyRejected, _rejected)
