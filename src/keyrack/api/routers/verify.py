"""``POST /v1/verify``: a plain Starlette endpoint, because it is the hot path.

FastAPI's dependency and response-model machinery costs more than the whole verify, so this
route authenticates, parses with pydantic's JSON validator and answers with orjson directly.
Its OpenAPI entry is added by ``keyrack.api.app`` from the same schemas.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from keyrack.api.deps import bearer_token
from keyrack.api.problems import problem, request_id_of
from keyrack.domain.permissions import Permission
from keyrack.errors import AuthenticationFailed, PermissionDenied
from keyrack.runtime import Runtime
from keyrack.schemas.render import verify_body
from keyrack.schemas.verify import VerifyRequest

_validate = VerifyRequest.model_validate_json
_dumps = orjson.dumps
_OPTIONS = orjson.OPT_UTC_Z


async def verify(request: Request) -> Response:
    """Verify an end-user key for a root key holding ``keys.verify``."""
    runtime: Runtime = request.app.state.runtime
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationFailed
    principal = await runtime.accounts.authenticate(token)
    if Permission.KEYS_VERIFY not in principal.permissions:
        raise PermissionDenied("this action needs the 'keys.verify' permission")
    try:
        body = _validate(await request.body())
    except ValidationError as exc:
        return problem(
            422,
            code="request.invalid",
            detail="the verify body is invalid; see 'errors'",
            request_id=request_id_of(request),
            errors=[
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False, include_context=False)
            ],
        )
    result = await runtime.verifier.verify(body.key, tenant_scope=principal.tenant_id)
    return Response(_dumps(verify_body(result), option=_OPTIONS), media_type="application/json")
