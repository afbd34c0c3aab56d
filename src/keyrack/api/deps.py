"""FastAPI dependencies as ``Annotated`` aliases, defined once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keyrack.domain.permissions import Principal
from keyrack.errors import AuthenticationFailed
from keyrack.runtime import Runtime
from keyrack.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

_bearer = HTTPBearer(auto_error=False, description="A root key: `Authorization: Bearer krroot_…`")


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


async def authenticate(
    request: Request,
    runtime: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The management caller, from its root key.

    Raises:
        AuthenticationFailed: No bearer token, or not a live root key.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationFailed
    return await runtime.accounts.authenticate(token)


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
