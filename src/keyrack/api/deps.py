"""FastAPI dependencies as ``Annotated`` aliases, defined once."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keyrack.api.problems import request_id_of
from keyrack.domain import keys as keyformat
from keyrack.domain.audit import RequestOrigin
from keyrack.domain.permissions import Principal
from keyrack.errors import AuthenticationFailed
from keyrack.runtime import Runtime
from keyrack.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

_bearer = HTTPBearer(
    auto_error=False,
    description=(
        "A root key (`krroot_…`), a login or impersonation session (`krses_…`, `krimp_…`) "
        "or a personal access token (`krpat_…`)."
    ),
)


def get_runtime(request: Request) -> Runtime:
    """The process's services, set up by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def origin_of(request: Request) -> RequestOrigin:
    """Where a request came from, for the audit trail (the peer address as the server saw it)."""
    client = request.client
    return RequestOrigin(
        ip=client.host if client is not None else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=request_id_of(request),
    )


async def authenticate(
    request: Request,
    runtime: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The management caller, from its root key or user token.

    Raises:
        AuthenticationFailed: No bearer token, or not a live credential.
    """
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationFailed
    origin = origin_of(request)
    if keyformat.is_root_key(token):
        principal = replace(await runtime.accounts.authenticate(token), origin=origin)
    else:
        principal = await runtime.auth.authenticate(token, origin=origin)
    request.state.principal = principal
    return principal


OriginDep = Annotated[RequestOrigin, Depends(origin_of)]


PrincipalDep = Annotated[Principal, Depends(authenticate)]
TenantIdPath = Annotated[str, Path(max_length=64, description="A tenant id (`ten_…`).")]
KeyIdPath = Annotated[str, Path(max_length=64, description="A key id (`key_…`).")]
AccountIdPath = Annotated[str, Path(max_length=64, description="A service account id (`sa_…`).")]
RootKeyIdPath = Annotated[str, Path(max_length=64, description="A root key id (`rk_…`).")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
CursorQuery = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]
DEFAULT_PAGE = DEFAULT_LIMIT
UserIdPath = Annotated[str, Path(max_length=64, description="A user id (`usr_…`).")]
InvitationIdPath = Annotated[str, Path(max_length=64, description="An invitation id (`inv_…`).")]
UserTokenIdPath = Annotated[
    str, Path(max_length=64, description="A personal access token id (`tok_…`).")
]
SystemKeyNamePath = Annotated[
    str, Path(min_length=1, max_length=255, description="The system key's name (per user).")
]
