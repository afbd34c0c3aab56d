"""Users (platform), a tenant's members and invitations, and accepting an invitation.

``POST /v1/invitations/accept`` is public: the invitation token is the credential.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from keyrack.api.deps import (
    DEFAULT_PAGE,
    CursorQuery,
    InvitationIdPath,
    LimitQuery,
    OriginDep,
    PrincipalDep,
    RuntimeDep,
    TenantIdPath,
    UserIdPath,
)
from keyrack.domain.people import TenantRole
from keyrack.runtime import Runtime
from keyrack.schemas.common import Page
from keyrack.schemas.people import (
    InvitationAccept,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    MemberAdd,
    MemberRead,
    MembershipRead,
    MemberUpdate,
    TenantUsers,
    UserCreate,
    UserRead,
)
from keyrack.services.clock import to_datetime

router = APIRouter(tags=["people"])

RoleQuery = Annotated[TenantRole | None, Query(description="Only members with this role.")]


def _now(runtime: Runtime) -> datetime:
    """The services' clock reading, for answers that depend on the time (invitation status)."""
    return to_datetime(runtime.clock.now())


# Users ----------------------------------------------------------------------------------------


@router.get("/v1/users/me")
async def get_me(actor: PrincipalDep, runtime: RuntimeDep) -> UserRead:
    """Read the user this request authenticated as, with its memberships."""
    view = await runtime.people.get_user(actor, actor.id)
    return UserRead.of(view.user, view.memberships)


@router.post("/v1/admin/users", status_code=201, tags=["admin"])
async def create_user(body: UserCreate, actor: PrincipalDep, runtime: RuntimeDep) -> UserRead:
    """Create a user (platform callers with `users.write`)."""
    user = await runtime.people.create_user(
        actor,
        email=body.email,
        name=body.name,
        password=None if body.password is None else body.password.get_secret_value(),
        is_platform_admin=body.is_platform_admin,
    )
    return UserRead.of(user)


@router.get("/v1/admin/users", tags=["admin"])
async def list_users(
    actor: PrincipalDep,
    runtime: RuntimeDep,
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
    role: RoleQuery = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[UserRead]:
    """List users, optionally the members of a tenant and/or holders of a role there."""
    page = await runtime.people.list_users(
        actor, tenant_id=tenant_id, role=role, limit=limit, cursor=cursor
    )
    items = [UserRead.of(v.user, v.memberships) for v in page.items]
    return Page(items=items, next_cursor=page.next_cursor)


@router.get("/v1/admin/users/{user_id}", tags=["admin"])
async def get_user(user_id: UserIdPath, actor: PrincipalDep, runtime: RuntimeDep) -> UserRead:
    """Read one user with its memberships."""
    view = await runtime.people.get_user(actor, user_id)
    return UserRead.of(view.user, view.memberships)


# Members --------------------------------------------------------------------------------------

_M = "/v1/tenants/{tenant_id}/members"


@router.post(_M, status_code=201)
async def add_member(
    tenant_id: TenantIdPath, body: MemberAdd, actor: PrincipalDep, runtime: RuntimeDep
) -> MemberRead:
    """Make an existing user a member of the tenant."""
    member = await runtime.people.add_member(actor, tenant_id, user_id=body.user_id, role=body.role)
    return MemberRead.of(member)


@router.get(_M)
async def list_members(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    role: RoleQuery = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[MemberRead]:
    """List the tenant's members, optionally by role."""
    page = await runtime.people.list_members(
        actor, tenant_id, role=role, limit=limit, cursor=cursor
    )
    return Page(items=[MemberRead.of(m) for m in page.items], next_cursor=page.next_cursor)


@router.get(_M + "/{user_id}")
async def get_member(
    tenant_id: TenantIdPath, user_id: UserIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> MemberRead:
    """Read one member of the tenant."""
    return MemberRead.of(await runtime.people.get_member(actor, tenant_id, user_id))


@router.patch(_M + "/{user_id}")
async def update_member(
    tenant_id: TenantIdPath,
    user_id: UserIdPath,
    body: MemberUpdate,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> MemberRead:
    """Change a member's role; the tenant's last admin cannot be demoted (409)."""
    member = await runtime.people.change_role(actor, tenant_id, user_id, role=body.role)
    return MemberRead.of(member)


@router.delete(_M + "/{user_id}", status_code=204)
async def remove_member(
    tenant_id: TenantIdPath, user_id: UserIdPath, actor: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Remove a member; the tenant's last admin cannot be removed (409)."""
    await runtime.people.remove_member(actor, tenant_id, user_id)
    return Response(status_code=204)


@router.get("/v1/tenants/{tenant_id}/users")
async def list_tenant_users(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    role: RoleQuery = None,
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> TenantUsers:
    """A page of the tenant's members and its pending invitations."""
    people = await runtime.people.tenant_people(
        actor, tenant_id, role=role, limit=limit, cursor=cursor
    )
    now = _now(runtime)
    return TenantUsers(
        items=[MemberRead.of(m) for m in people.members.items],
        next_cursor=people.members.next_cursor,
        invitations=[InvitationRead.of(i, now=now) for i in people.invitations],
    )


# Invitations ----------------------------------------------------------------------------------

_I = "/v1/tenants/{tenant_id}/invitations"


@router.post(_I, status_code=201)
async def invite(
    tenant_id: TenantIdPath, body: InvitationCreate, actor: PrincipalDep, runtime: RuntimeDep
) -> InvitationCreated:
    """Invite an email address with a role; the single-use token is shown once."""
    invitation, token = await runtime.people.invite(
        actor, tenant_id, email=body.email, role=body.role
    )
    return InvitationCreated(
        invitation=InvitationRead.of(invitation, now=invitation.created_at), token=token
    )


@router.get(_I)
async def list_invitations(
    tenant_id: TenantIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
    status: Annotated[Literal["pending", "all"], Query()] = "pending",
    limit: LimitQuery = DEFAULT_PAGE,
    cursor: CursorQuery = None,
) -> Page[InvitationRead]:
    """List the tenant's invitations: pending ones, or all of them."""
    page = await runtime.people.list_invitations(
        actor, tenant_id, pending_only=status == "pending", limit=limit, cursor=cursor
    )
    now = _now(runtime)
    items = [InvitationRead.of(i, now=now) for i in page.items]
    return Page(items=items, next_cursor=page.next_cursor)


@router.post(_I + "/{invitation_id}/revoke")
async def revoke_invitation(
    tenant_id: TenantIdPath,
    invitation_id: InvitationIdPath,
    actor: PrincipalDep,
    runtime: RuntimeDep,
) -> InvitationRead:
    """Revoke an open invitation; its token stops working (409 if closed already)."""
    invitation = await runtime.people.revoke_invitation(actor, tenant_id, invitation_id)
    return InvitationRead.of(invitation, now=_now(runtime))


@router.post("/v1/invitations/accept")
async def accept_invitation(
    body: InvitationAccept, origin: OriginDep, runtime: RuntimeDep
) -> InvitationAccepted:
    """Accept an invitation with its token; a new email also sends a name and a password."""
    user, membership = await runtime.people.accept(
        body.token.get_secret_value(),
        name=body.name,
        password=None if body.password is None else body.password.get_secret_value(),
        origin=origin,
    )
    return InvitationAccepted(
        user=UserRead.of(user, (membership,)), membership=MembershipRead.of(membership)
    )
