"""People repositories: users, memberships, invitations, user tokens and the audit log.

Users, their tokens and the audit log are platform-level; memberships and invitations are
bound to one tenant and every statement filters on it. None of them commits.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, exists, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from keyrack.domain.audit import AuditEvent
from keyrack.domain.people import (
    Invitation,
    Member,
    Membership,
    TenantRole,
    TokenKind,
    User,
    UserToken,
)
from keyrack.errors import AlreadyMember, DuplicateEmail
from keyrack.services.ports import TokenMatch
from keyrack.store.tables import (
    AuditEventRow,
    Base,
    InvitationRow,
    MembershipRow,
    TenantRow,
    UserRow,
    UserTokenRow,
)

# A user read never loads the password hash: only whether there is one.
_USER_COLUMNS: Final = (
    UserRow.id,
    UserRow.email,
    UserRow.name,
    UserRow.is_platform_admin,
    UserRow.created_at,
    UserRow.password_hash.is_not(None).label("has_password"),
)


def _user(row: Row[Any]) -> User:
    """A user from a row of ``_USER_COLUMNS`` (possibly followed by other columns)."""
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        is_platform_admin=bool(row.is_platform_admin),
        created_at=row.created_at,
        has_password=bool(row.has_password),
    )


async def _insert_unless_taken(
    session: AsyncSession, row_type: type[Base], values: dict[str, Any], *, unique: list[str]
) -> bool:
    """``INSERT … ON CONFLICT (unique) DO NOTHING``; whether the row went in.

    Unlike a failed insert, a conflict leaves the transaction usable; on PostgreSQL it first
    waits for a concurrent transaction inserting the same values, and conflicts only if that
    one commits.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(row_type).values(**values).on_conflict_do_nothing(index_elements=unique)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an INSERT


def _membership(row: MembershipRow) -> Membership:
    return Membership(
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        role=TenantRole(row.role),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlUserRepository:
    """Users (platform-level)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _one(self, *conditions: Any) -> User | None:
        row = (await self._session.execute(select(*_USER_COLUMNS).where(*conditions))).first()
        return None if row is None else _user(row)

    async def get(self, user_id: str) -> User | None:
        """The user, or ``None``."""
        return await self._one(UserRow.id == user_id)

    async def by_email(self, email: str) -> User | None:
        """The user with this (already normalised) email, or ``None``."""
        return await self._one(UserRow.email == email)

    async def password_hash(self, user_id: str) -> str | None:
        """The stored argon2 hash, or ``None``."""
        value = await self._session.scalar(
            select(UserRow.password_hash).where(UserRow.id == user_id)
        )
        return None if value is None else str(value)

    async def add(self, user: User, *, password_hash: str | None) -> None:
        """Insert; a taken email raises ``DuplicateEmail`` (the transaction stays usable)."""
        values = {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "is_platform_admin": user.is_platform_admin,
            "password_hash": password_hash,
            "created_at": user.created_at,
        }
        if not await _insert_unless_taken(self._session, UserRow, values, unique=["email"]):
            raise DuplicateEmail

    async def set_password(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash."""
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash)
        )

    async def list(
        self,
        *,
        limit: int,
        after: str | None,
        tenant_id: str | None = None,
        role: TenantRole | None = None,
    ) -> builtins.list[User]:
        """Users by id after the cursor; members of ``tenant_id`` / holders of ``role``.

        The filters are an ``EXISTS`` on memberships, so a user with several matching
        memberships is listed once.
        """
        stmt = select(*_USER_COLUMNS).order_by(UserRow.id).limit(limit)
        if after is not None:
            stmt = stmt.where(UserRow.id > after)
        if tenant_id is not None or role is not None:
            held = exists().where(MembershipRow.user_id == UserRow.id)
            if tenant_id is not None:
                held = held.where(MembershipRow.tenant_id == tenant_id)
            if role is not None:
                held = held.where(MembershipRow.role == role.value)
            stmt = stmt.where(held)
        return [_user(row) for row in await self._session.execute(stmt)]

    async def memberships(self, user_ids: Sequence[str]) -> builtins.list[Membership]:
        """Every membership of these users, by user id then tenant id."""
        if not user_ids:
            return []
        rows = await self._session.scalars(
            select(MembershipRow)
            .where(MembershipRow.user_id.in_(set(user_ids)))
            .order_by(MembershipRow.user_id, MembershipRow.tenant_id)
        )
        return [_membership(row) for row in rows]


class SqlMembershipRepository:
    """Memberships of one tenant; every statement filters on ``tenant_id``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def get(self, user_id: str) -> Membership | None:
        """The user's membership in this tenant, or ``None``."""
        row = await self._session.scalar(
            select(MembershipRow).where(
                MembershipRow.tenant_id == self.tenant_id, MembershipRow.user_id == user_id
            )
        )
        return None if row is None else _membership(row)

    async def add(self, membership: Membership) -> None:
        """Insert; an existing membership raises ``AlreadyMember`` (the transaction goes on).

        An unknown user or tenant fails the foreign key (``Conflict`` from the unit of work).
        """
        if membership.tenant_id != self.tenant_id:
            raise ValueError("membership belongs to another tenant than this repository")
        values = {
            "tenant_id": membership.tenant_id,
            "user_id": membership.user_id,
            "role": membership.role.value,
            "created_at": membership.created_at,
            "updated_at": membership.updated_at,
        }
        unique = ["tenant_id", "user_id"]
        if not await _insert_unless_taken(self._session, MembershipRow, values, unique=unique):
            raise AlreadyMember

    async def set_role(self, user_id: str, role: TenantRole, *, at: datetime) -> bool:
        """Change a member's role; whether the member existed."""
        result = await self._session.execute(
            update(MembershipRow)
            .where(MembershipRow.tenant_id == self.tenant_id, MembershipRow.user_id == user_id)
            .values(role=role.value, updated_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    async def remove(self, user_id: str) -> bool:
        """Delete a membership; whether it existed."""
        result = await self._session.execute(
            sql_delete(MembershipRow).where(
                MembershipRow.tenant_id == self.tenant_id, MembershipRow.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def list(
        self, *, limit: int, after: str | None, role: TenantRole | None = None
    ) -> builtins.list[Member]:
        """Members with their users, by user id after the cursor (one joined query)."""
        stmt = (
            select(MembershipRow, *_USER_COLUMNS)
            .join(UserRow, UserRow.id == MembershipRow.user_id)
            .where(MembershipRow.tenant_id == self.tenant_id)
            .order_by(MembershipRow.user_id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(MembershipRow.user_id > after)
        if role is not None:
            stmt = stmt.where(MembershipRow.role == role.value)
        return [
            Member(membership=_membership(row[0]), user=_user(row))
            for row in await self._session.execute(stmt)
        ]

    async def admin_ids(self, *, lock: bool) -> builtins.list[str]:
        """User ids of the tenant's admins, in id order.

        With ``lock``, first take a lock that every other ``admin_ids(lock=True)`` of this
        tenant waits for until this transaction ends: ``SELECT … FOR UPDATE`` of the tenant's
        row on PostgreSQL; on SQLite a no-op write to that row, which takes the database's
        single write lock (the driver starts a transaction only at the first write, so a plain
        read would not hold anything). The admins are then read after the lock, so they
        include every change committed before it.
        """
        if lock:
            if self._session.get_bind().dialect.name == "postgresql":
                await self._session.execute(
                    select(TenantRow.id).where(TenantRow.id == self.tenant_id).with_for_update()
                )
            else:
                await self._session.execute(
                    update(TenantRow)
                    .where(TenantRow.id == self.tenant_id)
                    .values(updated_at=TenantRow.updated_at)
                    .execution_options(synchronize_session=False)
                )
        rows = await self._session.scalars(
            select(MembershipRow.user_id)
            .where(
                MembershipRow.tenant_id == self.tenant_id,
                MembershipRow.role == TenantRole.ADMIN.value,
            )
            .order_by(MembershipRow.user_id)
        )
        return list(rows)


def _invitation(row: InvitationRow) -> Invitation:
    return Invitation(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=TenantRole(row.role),
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_at=row.accepted_at,
        revoked_at=row.revoked_at,
    )


class SqlInvitationRepository:
    """Invitations of one tenant; every statement filters on ``tenant_id``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def get(self, invitation_id: str) -> Invitation | None:
        """The invitation in this tenant, or ``None``."""
        row = await self._session.scalar(
            select(InvitationRow).where(
                InvitationRow.tenant_id == self.tenant_id, InvitationRow.id == invitation_id
            )
        )
        return None if row is None else _invitation(row)

    async def add(self, invitation: Invitation, *, digest: bytes, pepper_version: int) -> None:
        """Insert an invitation with its token's digest."""
        if invitation.tenant_id != self.tenant_id:
            raise ValueError("invitation belongs to another tenant than this repository")
        self._session.add(
            InvitationRow(
                id=invitation.id,
                tenant_id=invitation.tenant_id,
                email=invitation.email,
                role=invitation.role.value,
                digest=digest,
                pepper_version=pepper_version,
                invited_by=invitation.invited_by,
                created_at=invitation.created_at,
                expires_at=invitation.expires_at,
                accepted_at=invitation.accepted_at,
                revoked_at=invitation.revoked_at,
            )
        )
        await self._session.flush()

    async def list(
        self, *, limit: int, after: str | None, pending_at: datetime | None = None
    ) -> builtins.list[Invitation]:
        """Invitations of this tenant by id after the cursor; optionally pending ones only."""
        stmt = (
            select(InvitationRow)
            .where(InvitationRow.tenant_id == self.tenant_id)
            .order_by(InvitationRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(InvitationRow.id > after)
        if pending_at is not None:
            stmt = stmt.where(
                InvitationRow.accepted_at.is_(None),
                InvitationRow.revoked_at.is_(None),
                InvitationRow.expires_at > pending_at,
            )
        return [_invitation(row) for row in await self._session.scalars(stmt)]

    async def close(
        self,
        invitation_id: str,
        *,
        accepted_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> bool:
        """Mark an open invitation accepted or revoked (exactly one of the two times).

        One guarded ``UPDATE … WHERE accepted_at IS NULL AND revoked_at IS NULL``: of two
        concurrent closes the second waits for the first (PostgreSQL re-checks the condition on
        the committed row; SQLite has one writer) and changes nothing.

        Returns:
            Whether this call closed it.

        Raises:
            ValueError: Neither or both times given.
        """
        if (accepted_at is None) == (revoked_at is None):
            raise ValueError("give exactly one of accepted_at and revoked_at")
        values = (
            {"accepted_at": accepted_at} if accepted_at is not None else {"revoked_at": revoked_at}
        )
        result = await self._session.execute(
            update(InvitationRow)
            .where(
                InvitationRow.tenant_id == self.tenant_id,
                InvitationRow.id == invitation_id,
                InvitationRow.accepted_at.is_(None),
                InvitationRow.revoked_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


class SqlInvitationLookup:
    """Invitations by token digest, whatever their tenant (the token is the credential)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, digests: Sequence[bytes]) -> Invitation | None:
        """The invitation whose token has one of ``digests``, or ``None``."""
        if not digests:
            return None
        row = await self._session.scalar(
            select(InvitationRow).where(InvitationRow.digest.in_(digests)).limit(1)
        )
        return None if row is None else _invitation(row)


def _token(row: UserTokenRow) -> UserToken:
    return UserToken(
        id=row.id,
        user_id=row.user_id,
        kind=TokenKind(row.kind),
        name=row.name,
        start=row.start,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        impersonator_id=row.impersonator_id,
        impersonator_type=row.impersonator_type,
    )


class SqlUserTokenRepository:
    """Sessions, impersonation sessions and personal access tokens (platform-level)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: UserToken, *, digest: bytes, pepper_version: int) -> None:
        """Insert a token with its digest."""
        self._session.add(
            UserTokenRow(
                id=token.id,
                user_id=token.user_id,
                kind=token.kind.value,
                name=token.name,
                start=token.start,
                digest=digest,
                pepper_version=pepper_version,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
                last_used_at=token.last_used_at,
                impersonator_type=token.impersonator_type,
                impersonator_id=token.impersonator_id,
            )
        )
        await self._session.flush()

    async def find(self, digests: Sequence[bytes]) -> TokenMatch | None:
        """The token with one of ``digests`` and its user (one query), then its memberships."""
        if not digests:
            return None
        row = (
            await self._session.execute(
                select(UserTokenRow, *_USER_COLUMNS)
                .join(UserRow, UserRow.id == UserTokenRow.user_id)
                .where(UserTokenRow.digest.in_(digests))
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        token_row: UserTokenRow = row[0]
        memberships = await self._session.scalars(
            select(MembershipRow)
            .where(MembershipRow.user_id == token_row.user_id)
            .order_by(MembershipRow.tenant_id)
        )
        return TokenMatch(
            token=_token(token_row),
            user=_user(row),
            memberships=tuple(_membership(m) for m in memberships),
            pepper_version=token_row.pepper_version,
        )

    async def get(self, user_id: str, token_id: str) -> UserToken | None:
        """One token of ``user_id``, or ``None``."""
        row = await self._session.scalar(
            select(UserTokenRow).where(UserTokenRow.user_id == user_id, UserTokenRow.id == token_id)
        )
        return None if row is None else _token(row)

    async def list(
        self, user_id: str, *, kind: str, limit: int, after: str | None
    ) -> builtins.list[UserToken]:
        """The user's tokens of ``kind`` by id after the cursor."""
        stmt = (
            select(UserTokenRow)
            .where(UserTokenRow.user_id == user_id, UserTokenRow.kind == str(kind))
            .order_by(UserTokenRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(UserTokenRow.id > after)
        return [_token(row) for row in await self._session.scalars(stmt)]

    async def revoke(self, token_id: str, *, at: datetime) -> bool:
        """Revoke the token if it is live at ``at``; whether it was."""
        result = await self._session.execute(
            update(UserTokenRow)
            .where(
                UserTokenRow.id == token_id,
                UserTokenRow.revoked_at.is_(None),
                UserTokenRow.expires_at > at,
            )
            .values(revoked_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


class SqlAuditLog:
    """The audit log: one row per event, in the transaction of the change it records."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, event: AuditEvent) -> None:
        """Insert ``event`` now (a failure fails the statement, hence the transaction)."""
        self._session.add(
            AuditEventRow(
                tenant_id=event.tenant_id,
                at=event.at,
                action=event.action,
                actor_type=event.actor.type,
                actor_id=event.actor.id,
                impersonator_type=None if event.impersonator is None else event.impersonator.type,
                impersonator_id=None if event.impersonator is None else event.impersonator.id,
                target_type=None if event.target is None else event.target.type,
                target_id=None if event.target is None else event.target.id,
                ip=event.origin.ip,
                user_agent=event.origin.user_agent,
                request_id=event.origin.request_id,
                outcome=event.outcome,
                changed=list(event.changed),
            )
        )
        await self._session.flush()
