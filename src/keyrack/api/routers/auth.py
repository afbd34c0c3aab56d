"""Human credentials: login and logout, personal access tokens, impersonation.

``POST /v1/auth/login`` is public (the password is the credential); every other route here
takes the caller's bearer token.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    LimitQuery,
    OriginDep,
    PrincipalDep,
    RuntimeDep,
    UserTokenIdPath,
)
from keyrack.schemas.common import Page
from keyrack.schemas.people import (
    ImpersonateRequest,
    LoginRequest,
    SessionIssued,
    UserTokenCreate,
    UserTokenCreated,
    UserTokenRead,
)

router = APIRouter(tags=["auth"])


@router.post("/v1/auth/login", responses={429: {"description": "Too many failed logins"}})
async def login(body: LoginRequest, origin: OriginDep, runtime: RuntimeDep) -> SessionIssued:
    """Log in with an email and a password; the session token is shown once."""
    issued = await runtime.auth.login(body.email, body.password.get_secret_value(), origin=origin)
    return SessionIssued(token=issued.secret, expires_at=issued.token.expires_at)


@router.post("/v1/auth/logout", status_code=204)
async def logout(actor: PrincipalDep, runtime: RuntimeDep) -> Response:
    """Revoke the session (or token) this request authenticated with."""
    await runtime.auth.logout(actor)
    return Response(status_code=204)


@router.post("/v1/users/me/tokens", status_code=201)
async def create_token(
    body: UserTokenCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> UserTokenCreated:
    """Create a personal access token acting with your own rights (shown once)."""
    issued = await runtime.auth.create_token(actor, name=body.name, expires_at=body.expires_at)
    return UserTokenCreated(token=UserTokenRead.of(issued.token), secret=issued.secret)


@router.get("/v1/users/me/tokens")
async def list_tokens(
    actor: PrincipalDep,
    runtime: RuntimeDep,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[UserTokenRead]:
    """List your personal access tokens, live or not (never the tokens themselves)."""
    page = await runtime.auth.list_tokens(actor, limit=limit, cursor=cursor)
    return Page(items=[UserTokenRead.of(t) for t in page.items], next_cursor=page.next_cursor)


@router.delete("/v1/users/me/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: UserTokenIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Revoke one of your personal access tokens."""
    await runtime.auth.revoke_token(actor, token_id)
    return Response(status_code=204)


@router.post("/v1/admin/impersonate", tags=["admin"])
async def impersonate(
    body: ImpersonateRequest, actor: PrincipalDep, runtime: RuntimeDep
) -> SessionIssued:
    """Start a short-lived session acting as a user, with exactly the user's rights."""
    issued = await runtime.auth.impersonate(actor, body.user_id)
    return SessionIssued(token=issued.secret, expires_at=issued.token.expires_at)


@router.post("/v1/admin/stop-impersonation", status_code=204, tags=["admin"])
async def stop_impersonation(actor: PrincipalDep, runtime: RuntimeDep) -> Response:
    """End the impersonation session this request authenticated with."""
    await runtime.auth.stop_impersonation(actor)
    return Response(status_code=204)
