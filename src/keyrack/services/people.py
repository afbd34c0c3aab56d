"""Users, tenant memberships and invitations (DESIGN.md §2, §6, §11).

Who may call what is ``authorize`` over the role table in ``domain.permissions``; this module
adds the rules that table cannot say: a tenant keeps at least one admin, nobody makes a
platform admin without holding everything a platform admin holds, and an invitation's token
works once, before it expires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final

from keyrack.domain import ids
from keyrack.domain import keys as keyformat
from keyrack.domain.audit import NO_ORIGIN, AuditEvent, Ref, RequestOrigin
from keyrack.domain.hashing import Peppers
from keyrack.domain.people import (
    INVITATION_PREFIX,
    Invitation,
    Member,
    Membership,
    TenantRole,
    User,
    check_email,
    check_password,
)
from keyrack.domain.permissions import PLATFORM_ADMIN_PERMISSIONS, Permission, Principal
from keyrack.errors import (
    AlreadyMember,
    DuplicateEmail,
    InvalidInput,
    InvitationClosed,
    InvitationExpired,
    InvitationNotFound,
    LastAdmin,
    MemberNotFound,
    PermissionDenied,
    TenantNotFound,
    UserNotFound,
)
from keyrack.services import inputs
from keyrack.services.audit import event
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import (
    Clock,
    Entropy,
    PasswordHasher,
    UnitOfWork,
    UnitOfWorkFactory,
)

logger = logging.getLogger(__name__)

INVITATION_TTL: Final = timedelta(days=7)
MAX_PENDING_SHOWN: Final = 100


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with the tenants it belongs to."""

    user: User
    memberships: tuple[Membership, ...]

    @property
    def id(self) -> str:
        """The user's id (user lists page by it)."""
        return self.user.id


@dataclass(frozen=True, slots=True)
class TenantPeople:
    """A tenant's members (one page) and its pending invitations."""

    members: Page[Member]
    invitations: tuple[Invitation, ...]


def _role(value: str) -> TenantRole:
    try:
        return TenantRole(value)
    except ValueError:
        raise InvalidInput("role must be 'admin' or 'member'") from None


class PeopleService:
    """Users (platform), memberships and invitations (per tenant)."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        entropy: Entropy,
        peppers: Peppers,
        hasher: PasswordHasher,
        invitation_ttl: timedelta = INVITATION_TTL,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._entropy = entropy
        self._peppers = peppers
        self._hasher = hasher
        self._invitation_ttl = invitation_ttl

    def _new_id(self, prefix: str, now: float) -> str:
        return ids.new_id(prefix, now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES))

    @staticmethod
    async def _check_tenant(uow: UnitOfWork, tenant_id: str) -> None:
        if await uow.tenants.get(tenant_id) is None:
            raise TenantNotFound

    # -- users (platform) ---------------------------------------------------------------

    async def create_user(
        self,
        actor: Principal,
        *,
        email: str,
        name: str,
        password: str | None = None,
        is_platform_admin: bool = False,
    ) -> User:
        """Create a user (a platform action).

        Raises:
            PermissionDenied: The caller lacks ``users.write``, or asked for a platform admin
                without holding every permission a platform admin holds.
            DuplicateEmail: Another user has this email.
            InvalidInput: A bad email, name or password.
        """
        authorize(actor, Permission.USERS_WRITE, tenant_id=None)
        if is_platform_admin and not actor.permissions >= PLATFORM_ADMIN_PERMISSIONS:
            raise PermissionDenied(
                "only a caller holding every platform-admin permission may create a platform admin"
            )
        email = inputs.checked(check_email, email)
        name = inputs.name(name)
        password_hash = (
            None
            if password is None
            else await self._hasher.hash(inputs.checked(check_password, password))
        )
        now = self._clock.now()
        user = User(
            id=self._new_id("usr", now),
            email=email,
            name=name,
            is_platform_admin=is_platform_admin,
            created_at=to_datetime(now),
            has_password=password_hash is not None,
        )
        async with self._uow() as uow:
            if await uow.users.by_email(email) is not None:
                raise DuplicateEmail
            await uow.users.add(user, password_hash=password_hash)
            await uow.audit.record(
                event(
                    actor,
                    "user.created",
                    tenant_id=None,
                    target=Ref("user", user.id),
                    at=user.created_at,
                    changed=("email", "name", "is_platform_admin")
                    + (("password",) if password_hash else ()),
                )
            )
            await uow.commit()
        logger.info("user.created", extra={"user_id": user.id})
        return user

    async def get_user(self, actor: Principal, user_id: str) -> UserView:
        """One user with its memberships: a platform caller's, or the caller's own.

        Raises:
            UserNotFound: No such user (also what a caller without ``users.read`` sees of
                anyone but itself).
        """
        if not (actor.is_user and actor.id == user_id):
            try:
                authorize(actor, Permission.USERS_READ, tenant_id=None)
            except PermissionDenied:
                raise UserNotFound from None
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound
            memberships = await uow.users.memberships([user_id])
        return UserView(user, tuple(memberships))

    async def list_users(
        self,
        actor: Principal,
        *,
        tenant_id: str | None = None,
        role: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[UserView]:
        """A page of users, optionally members of ``tenant_id`` and/or holders of ``role``."""
        authorize(actor, Permission.USERS_READ, tenant_id=None)
        wanted = None if role is None else _role(role)
        async with self._uow() as uow:
            users = uow.users

            async def fetch(n: int, after: str | None) -> list[UserView]:
                found = await users.list(limit=n, after=after, tenant_id=tenant_id, role=wanted)
                memberships = await users.memberships([u.id for u in found])
                return [
                    UserView(u, tuple(m for m in memberships if m.user_id == u.id)) for u in found
                ]

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="usr")

    # -- memberships (tenant) -------------------------------------------------------------

    async def add_member(
        self, actor: Principal, tenant_id: str, *, user_id: str, role: str
    ) -> Member:
        """Make an existing user a member of the tenant.

        Raises:
            UserNotFound: No such user.
            AlreadyMember: The user is a member already.
        """
        authorize(actor, Permission.MEMBERS_WRITE, tenant_id=tenant_id)
        wanted = _role(role)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound
            members = uow.memberships(tenant_id)
            if await members.get(user_id) is not None:
                raise AlreadyMember
            membership = Membership(tenant_id, user_id, wanted, now, now)
            await members.add(membership)
            await uow.audit.record(
                event(
                    actor,
                    "member.added",
                    tenant_id=tenant_id,
                    target=Ref("user", user_id),
                    at=now,
                    changed=("role",),
                )
            )
            await uow.commit()
        return Member(membership, user)

    async def get_member(self, actor: Principal, tenant_id: str, user_id: str) -> Member:
        """One member of the tenant.

        Raises:
            MemberNotFound: The user is not a member of this tenant.
        """
        authorize(actor, Permission.MEMBERS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            return await self._member(uow, tenant_id, user_id)

    @staticmethod
    async def _member(uow: UnitOfWork, tenant_id: str, user_id: str) -> Member:
        membership = await uow.memberships(tenant_id).get(user_id)
        user = None if membership is None else await uow.users.get(user_id)
        if membership is None or user is None:
            raise MemberNotFound
        return Member(membership, user)

    async def list_members(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        role: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Member]:
        """A page of the tenant's members, ordered by user id."""
        authorize(actor, Permission.MEMBERS_READ, tenant_id=tenant_id)
        wanted = None if role is None else _role(role)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            members = uow.memberships(tenant_id)

            async def fetch(n: int, after: str | None) -> list[Member]:
                return await members.list(limit=n, after=after, role=wanted)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="usr")

    async def tenant_people(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        role: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> TenantPeople:
        """A page of members and the pending invitations (the tenant's "users" view)."""
        members = await self.list_members(actor, tenant_id, role=role, limit=limit, cursor=cursor)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            pending = await uow.invitations(tenant_id).list(
                limit=MAX_PENDING_SHOWN, after=None, pending_at=now
            )
        return TenantPeople(members, tuple(pending))

    async def change_role(
        self, actor: Principal, tenant_id: str, user_id: str, *, role: str
    ) -> Member:
        """Change a member's role; the tenant's last admin cannot be demoted.

        Raises:
            MemberNotFound: The user is not a member of this tenant.
            LastAdmin: The member is the tenant's only admin and would become a member.
        """
        authorize(actor, Permission.MEMBERS_WRITE, tenant_id=tenant_id)
        wanted = _role(role)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            members = uow.memberships(tenant_id)
            admins = await members.admin_ids(lock=True)
            member = await self._member(uow, tenant_id, user_id)
            if member.membership.role is wanted:
                return member
            if wanted is TenantRole.MEMBER and admins == [user_id]:
                raise LastAdmin
            await members.set_role(user_id, wanted, at=now)
            await uow.audit.record(
                event(
                    actor,
                    "member.updated",
                    tenant_id=tenant_id,
                    target=Ref("user", user_id),
                    at=now,
                    changed=("role",),
                )
            )
            await uow.commit()
        membership = Membership(tenant_id, user_id, wanted, member.membership.created_at, now)
        return Member(membership, member.user)

    async def remove_member(self, actor: Principal, tenant_id: str, user_id: str) -> None:
        """Remove a member; the tenant's last admin cannot be removed.

        Raises:
            MemberNotFound: The user is not a member of this tenant.
            LastAdmin: The member is the tenant's only admin.
        """
        authorize(actor, Permission.MEMBERS_WRITE, tenant_id=tenant_id)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            members = uow.memberships(tenant_id)
            admins = await members.admin_ids(lock=True)
            if admins == [user_id]:
                raise LastAdmin
            if not await members.remove(user_id):
                raise MemberNotFound
            await uow.audit.record(
                event(
                    actor,
                    "member.removed",
                    tenant_id=tenant_id,
                    target=Ref("user", user_id),
                    at=now,
                )
            )
            await uow.commit()

    # -- invitations ----------------------------------------------------------------------

    async def invite(
        self, actor: Principal, tenant_id: str, *, email: str, role: str
    ) -> tuple[Invitation, str]:
        """Invite an email address into the tenant; the token is shown once.

        Raises:
            AlreadyMember: A user with this email is a member already.
            InvalidInput: A bad email or role.
        """
        authorize(actor, Permission.MEMBERS_WRITE, tenant_id=tenant_id)
        email = inputs.checked(check_email, email)
        wanted = _role(role)
        now = self._clock.now()
        token = keyformat.generate(INVITATION_PREFIX, entropy=self._entropy(keyformat.RANDOM_BYTES))
        created = to_datetime(now)
        invitation = Invitation(
            id=self._new_id("inv", now),
            tenant_id=tenant_id,
            email=email,
            role=wanted,
            invited_by=actor.id,
            created_at=created,
            expires_at=created + self._invitation_ttl,
        )
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            existing = await uow.users.by_email(email)
            if existing is not None and await uow.memberships(tenant_id).get(existing.id):
                raise AlreadyMember
            await uow.invitations(tenant_id).add(
                invitation,
                digest=self._peppers.digest(token),
                pepper_version=self._peppers.current_version,
            )
            await uow.audit.record(
                event(
                    actor,
                    "invitation.created",
                    tenant_id=tenant_id,
                    target=Ref("invitation", invitation.id),
                    at=created,
                    changed=("email", "role"),
                )
            )
            await uow.commit()
        logger.info(
            "invitation.created", extra={"tenant_id": tenant_id, "invitation_id": invitation.id}
        )
        return invitation, token

    async def list_invitations(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        pending_only: bool = True,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Invitation]:
        """A page of the tenant's invitations (only pending ones unless asked otherwise)."""
        authorize(actor, Permission.MEMBERS_READ, tenant_id=tenant_id)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            invitations = uow.invitations(tenant_id)

            async def fetch(n: int, after: str | None) -> list[Invitation]:
                return await invitations.list(
                    limit=n, after=after, pending_at=now if pending_only else None
                )

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="inv")

    async def revoke_invitation(
        self, actor: Principal, tenant_id: str, invitation_id: str
    ) -> Invitation:
        """Revoke an open invitation; its token stops working.

        Raises:
            InvitationNotFound: No such invitation in this tenant.
            InvitationClosed: It was accepted or revoked already.
        """
        authorize(actor, Permission.MEMBERS_WRITE, tenant_id=tenant_id)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            invitations = uow.invitations(tenant_id)
            invitation = await invitations.get(invitation_id)
            if invitation is None:
                raise InvitationNotFound
            if not await invitations.close(invitation_id, revoked_at=now):
                raise InvitationClosed
            await uow.audit.record(
                event(
                    actor,
                    "invitation.revoked",
                    tenant_id=tenant_id,
                    target=Ref("invitation", invitation_id),
                    at=now,
                )
            )
            await uow.commit()
        return replace(invitation, revoked_at=now)

    async def accept(
        self,
        token: str,
        *,
        name: str | None = None,
        password: str | None = None,
        origin: RequestOrigin = NO_ORIGIN,
    ) -> tuple[User, Membership]:
        """Accept an invitation: the token is the credential; it works once.

        A new email becomes a user (``name`` and ``password`` required); an existing user just
        gains the membership (and must not send a name or password).

        Args:
            token: The invitation token.
            name: The new user's name.
            password: The new user's password.
            origin: Where the request came from, for the audit event.

        Raises:
            InvitationNotFound: Not an invitation token we issued.
            InvitationClosed: Accepted or revoked already.
            InvitationExpired: Past its expiry.
            AlreadyMember: The user is a member already.
            InvalidInput: Missing or unexpected name/password.
        """
        if not token.startswith(INVITATION_PREFIX + "_") or not keyformat.is_well_formed(token):
            raise InvitationNotFound
        checked_name = None if name is None else inputs.name(name)
        checked_password = None if password is None else inputs.checked(check_password, password)
        now = self._clock.now()
        moment = to_datetime(now)
        async with self._uow() as uow:
            invitation = await uow.invitation_tokens.find(list(self._peppers.all_digests(token)))
            if invitation is None:
                raise InvitationNotFound
            state = invitation.state(moment)
            if state in ("accepted", "revoked"):
                raise InvitationClosed
            if state == "expired":
                raise InvitationExpired
            user = await uow.users.by_email(invitation.email)
            if user is None:
                if checked_name is None or checked_password is None:
                    raise InvalidInput("a new user needs a name and a password")
                user = User(
                    id=self._new_id("usr", now),
                    email=invitation.email,
                    name=checked_name,
                    is_platform_admin=False,
                    created_at=moment,
                    has_password=True,
                )
                await uow.users.add(user, password_hash=await self._hasher.hash(checked_password))
            elif checked_name is not None or checked_password is not None:
                raise InvalidInput(
                    "this email already has an account: accept without a name or password"
                )
            members = uow.memberships(invitation.tenant_id)
            if await members.get(user.id) is not None:
                raise AlreadyMember
            if not await uow.invitations(invitation.tenant_id).close(
                invitation.id, accepted_at=moment
            ):
                raise InvitationClosed
            membership = Membership(invitation.tenant_id, user.id, invitation.role, moment, moment)
            await members.add(membership)
            await uow.audit.record(
                AuditEvent(
                    tenant_id=invitation.tenant_id,
                    at=moment,
                    action="invitation.accepted",
                    actor=Ref("user", user.id),
                    target=Ref("invitation", invitation.id),
                    origin=origin,
                    changed=("role",),
                )
            )
            await uow.commit()
        return user, membership
