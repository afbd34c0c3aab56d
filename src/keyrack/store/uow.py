"""The unit of work: one session and transaction shared by the repositories of a use case."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from keyrack.errors import BackendUnavailable, Conflict
from keyrack.store.engine import DRIVER_ERRORS
from keyrack.store.identities import SqlIdentityRepository
from keyrack.store.people import (
    SqlAuditLog,
    SqlInvitationLookup,
    SqlInvitationRepository,
    SqlMembershipRepository,
    SqlUserRepository,
    SqlUserTokenRepository,
)
from keyrack.store.rbac import SqlPermissionRepository, SqlRoleRepository
from keyrack.store.repositories import (
    SqlInvalidationLog,
    SqlKeyRepository,
    SqlRootKeyLookup,
    SqlSecretLookup,
    SqlServiceAccountRepository,
    SqlTenantRepository,
    SqlUsageWriter,
)


class SqlUnitOfWork:
    """Rolls back unless ``commit`` ran; turns driver failures into keyrack errors."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The open session (only inside ``async with``)."""
        if self._session is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._session

    async def __aenter__(self) -> Self:
        session = self._sessions()
        self._session = session
        self.tenants = SqlTenantRepository(session)
        self.secrets = SqlSecretLookup(session)
        self.root_keys = SqlRootKeyLookup(session)
        self.usage = SqlUsageWriter(session)
        self.invalidations = SqlInvalidationLog(session)
        self.users = SqlUserRepository(session)
        self.user_tokens = SqlUserTokenRepository(session)
        self.invitation_tokens = SqlInvitationLookup(session)
        self.audit = SqlAuditLog(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        self._session = None
        try:
            await session.rollback()
            await session.close()
        except DBAPIError:
            # The connection is already broken; the original error below says why.
            pass
        if isinstance(exc, IntegrityError):
            raise Conflict("the change conflicts with existing data") from exc
        if isinstance(exc, DRIVER_ERRORS):
            raise BackendUnavailable("the database is unavailable; retry later") from exc

    def keys(self, tenant_id: str) -> SqlKeyRepository:
        """Keys bound to ``tenant_id``."""
        return SqlKeyRepository(self.session, tenant_id)

    def service_accounts(self, tenant_id: str | None) -> SqlServiceAccountRepository:
        """Service accounts bound to a tenant or the platform."""
        return SqlServiceAccountRepository(self.session, tenant_id)

    def identities(self, tenant_id: str) -> SqlIdentityRepository:
        """Identities bound to ``tenant_id``."""
        return SqlIdentityRepository(self.session, tenant_id)

    def permissions(self, tenant_id: str) -> SqlPermissionRepository:
        """Key permissions bound to ``tenant_id``."""
        return SqlPermissionRepository(self.session, tenant_id)

    def roles(self, tenant_id: str) -> SqlRoleRepository:
        """Roles bound to ``tenant_id``."""
        return SqlRoleRepository(self.session, tenant_id)

    def memberships(self, tenant_id: str) -> SqlMembershipRepository:
        """Memberships bound to ``tenant_id``."""
        return SqlMembershipRepository(self.session, tenant_id)

    def invitations(self, tenant_id: str) -> SqlInvitationRepository:
        """Invitations bound to ``tenant_id``."""
        return SqlInvitationRepository(self.session, tenant_id)

    async def commit(self) -> None:
        """Commit the transaction."""
        try:
            await self.session.commit()
        except IntegrityError as exc:
            raise Conflict("the change conflicts with existing data") from exc
        except DRIVER_ERRORS as exc:
            raise BackendUnavailable("the database is unavailable; retry later") from exc
