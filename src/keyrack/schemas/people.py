"""People wire models: users, members, invitations, sessions and system keys (DESIGN.md §11).

Request models forbid unknown fields, so a body cannot slip in ``role``, ``is_platform_admin``
or ``tenant_id`` where the route does not take them (a 422, never a silent mass assignment).
Passwords and tokens sent to us are ``SecretStr``; the ones we send back (shown once) are left
out of every ``repr``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, SecretStr, StrictBool, StrictStr

from keyrack.domain.people import (
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Invitation,
    Member,
    Membership,
    TenantRole,
    User,
    UserToken,
)
from keyrack.schemas.common import Description, Meta, Name, Page, RequestModel
from keyrack.schemas.keys import KeyRead, Slugs

Email = Annotated[StrictStr, Field(min_length=1, max_length=MAX_EMAIL_LENGTH)]
NewPassword = Annotated[
    SecretStr, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]
"""A password being set: 12 to 1,024 characters."""
Password = Annotated[SecretStr, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
"""A password being checked (login): its length says nothing about the policy."""
Token = Annotated[SecretStr, Field(min_length=1, max_length=255)]
UserId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


# -- users ----------------------------------------------------------------------------------------


class UserCreate(RequestModel):
    """Create a user (platform admins); without a password the user cannot log in."""

    email: Email
    name: Name
    password: NewPassword | None = None
    is_platform_admin: StrictBool = False


class MembershipRead(BaseModel):
    """A user's role in one tenant."""

    tenant_id: str
    role: TenantRole

    @classmethod
    def of(cls, membership: Membership) -> MembershipRead:
        """Render a domain membership."""
        return cls(tenant_id=membership.tenant_id, role=membership.role)


class UserRead(BaseModel):
    """A user and the tenants it belongs to (never its password hash)."""

    id: str
    email: str
    name: str
    is_platform_admin: bool
    has_password: bool
    created_at: datetime
    memberships: list[MembershipRead]

    @classmethod
    def of(cls, user: User, memberships: tuple[Membership, ...] = ()) -> UserRead:
        """Render a domain user with its memberships."""
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            is_platform_admin=user.is_platform_admin,
            has_password=user.has_password,
            created_at=user.created_at,
            memberships=[MembershipRead.of(m) for m in memberships],
        )


# -- members --------------------------------------------------------------------------------------


class MemberAdd(RequestModel):
    """Make an existing user a member of the tenant."""

    user_id: UserId
    role: TenantRole


class MemberUpdate(RequestModel):
    """Change a member's role (the tenant's last admin cannot be demoted)."""

    role: TenantRole


class MemberRead(BaseModel):
    """A member of a tenant: the user and its role there."""

    user_id: str
    email: str
    name: str
    role: TenantRole
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberRead:
        """Render a domain member."""
        return cls(
            user_id=member.user.id,
            email=member.user.email,
            name=member.user.name,
            role=member.membership.role,
            created_at=member.membership.created_at,
            updated_at=member.membership.updated_at,
        )


# -- invitations ----------------------------------------------------------------------------------


class InvitationCreate(RequestModel):
    """Invite an email address into the tenant with a role."""

    email: Email
    role: TenantRole


class InvitationRead(BaseModel):
    """An invitation (never its token); ``status`` is as of the request."""

    id: str
    tenant_id: str
    email: str
    role: TenantRole
    invited_by: str
    status: InvitationStatus
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, *, now: datetime) -> InvitationRead:
        """Render a domain invitation with its status at ``now``."""
        return cls(
            id=invitation.id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            role=invitation.role,
            invited_by=invitation.invited_by,
            status=invitation.state(now),
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            accepted_at=invitation.accepted_at,
            revoked_at=invitation.revoked_at,
        )


class InvitationCreated(BaseModel):
    """A new invitation and its single-use token, shown this once."""

    invitation: InvitationRead
    token: str = Field(repr=False)


class InvitationAccept(RequestModel):
    """Accept an invitation; a new user sends a name and a password, an existing one neither."""

    token: Token
    name: Name | None = None
    password: NewPassword | None = None


class InvitationAccepted(BaseModel):
    """The user (new or existing) and the membership the invitation made."""

    user: UserRead
    membership: MembershipRead


class TenantUsers(Page[MemberRead]):
    """A page of the tenant's members, plus its pending invitations (up to 100)."""

    invitations: list[InvitationRead]


# -- sessions and tokens --------------------------------------------------------------------------


class LoginRequest(RequestModel):
    """Log in with an email and a password."""

    email: Email
    password: Password


class SessionIssued(BaseModel):
    """A session token (login or impersonation), shown this once."""

    token: str = Field(repr=False)
    expires_at: datetime


class ImpersonateRequest(RequestModel):
    """Start acting as this user (platform admins)."""

    user_id: UserId


class UserTokenCreate(RequestModel):
    """Create a personal access token; it expires in 90 days unless told (at most 366)."""

    name: Name
    expires_at: AwareDatetime | None = None


class UserTokenRead(BaseModel):
    """A personal access token's public facts (never the token)."""

    id: str
    name: str | None
    start: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: UserToken) -> UserTokenRead:
        """Render a domain user token."""
        return cls(
            id=token.id,
            name=token.name,
            start=token.start,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class UserTokenCreated(BaseModel):
    """A new personal access token and its secret, shown this once."""

    token: UserTokenRead
    secret: str = Field(repr=False)


# -- system keys ----------------------------------------------------------------------------------


class SystemKeyPut(RequestModel):
    """What a new system key gets; ignored when the key exists already."""

    description: Description | None = None
    expires_at: AwareDatetime | None = None
    meta: Meta = Field(default_factory=dict)
    permissions: Slugs = Field(default_factory=list)
    roles: Slugs = Field(default_factory=list)


class SystemKeyIssued(BaseModel):
    """A system key and its secret (returned on every PUT, each return audited)."""

    key: KeyRead
    secret: str = Field(repr=False)
