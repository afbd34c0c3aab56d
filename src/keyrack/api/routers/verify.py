"""``POST /v1/verify`` as a plain ASGI handler: the hot path skips routing and frameworks.

``keyrack.api.app`` serves it as a *fast route*: matched by one dict lookup on the path and
run behind ``GuardMiddleware`` (request id, size limits) only, without Starlette's middleware
stack, FastAPI's router walk, dependency solving, response-model validation or telemetry,
which together cost several times the verify itself. The route's OpenAPI entry is added by
``keyrack.api.app`` from the same pydantic schemas.
"""

from __future__ import annotations

from typing import Final

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from keyrack import errors
from keyrack.api import problems
from keyrack.api.deps import bearer_token
from keyrack.domain.permissions import Permission
from keyrack.domain.verification import NO_FACTS, VerifyFacts
from keyrack.runtime import Runtime
from keyrack.schemas.render import verify_body
from keyrack.schemas.verify import VerifyRequest

PATH: Final = "/v1/verify"
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_validate = VerifyRequest.model_validate_json
_dumps = orjson.dumps
_loads = orjson.loads
_UTC_Z = orjson.OPT_UTC_Z


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[str, VerifyFacts]:
    """The ``key`` and request facts of a verify body; pydantic validates anything unusual.

    Raises:
        ValidationError: The body is not a valid ``VerifyRequest``.
    """
    try:
        data = _loads(raw)
    except orjson.JSONDecodeError:
        data = None
    # The common body is {"key": "..."}: checked here in a few comparisons; pydantic would
    # accept exactly the same, only slower.
    if type(data) is dict and len(data) == 1 and type(data.get("key")) is str:
        return str(data["key"]), NO_FACTS
    request = _validate(raw)
    return request.key, request.facts()


async def verify(scope: Scope, receive: Receive, send: Send) -> None:
    """Verify an end-user key for a root key holding ``keys.verify``."""
    runtime: Runtime = scope["app"].state.runtime
    request_id = scope.get("state", {}).get("request_id")
    try:
        token = bearer_token(_header(scope, b"authorization"))
        if token is None:
            raise errors.AuthenticationFailed
        principal = await runtime.accounts.authenticate(token)
        if Permission.KEYS_VERIFY not in principal.permissions:
            raise errors.PermissionDenied("this action needs the 'keys.verify' permission")
        key, facts = _parse(await _body(receive))
        result = await runtime.verifier.verify(key, tenant_scope=principal.tenant_id, facts=facts)
    except ValidationError as exc:
        response = problems.invalid_request(
            exc, request_id, detail="the verify body is invalid; see 'errors'"
        )
    except errors.KeyrackError as exc:
        response = problems.from_error(exc, request_id)
    except HTTPException as exc:  # the size guard's 413
        response = problems.problem(
            exc.status_code, code="request.body_too_large", detail=exc.detail, request_id=request_id
        )
    else:
        payload = _dumps(verify_body(result), option=_UTC_Z)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return
    await response(scope, receive, send)
