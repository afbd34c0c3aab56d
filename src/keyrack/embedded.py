"""keyrack as a library: the same services in-process, verify without a network hop.

Example::

    from keyrack import Keyrack, Settings

    async with await Keyrack.open(Settings()) as kr:
        tenant = await kr.create_tenant("Acme")
        key, secret = await kr.create_key(tenant.id, "backend")
        result = await kr.verify(secret)
        assert result.valid
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from keyrack.config import Settings
from keyrack.domain.models import ApiKey, JsonObject, Tenant
from keyrack.domain.verification import VerifyResult
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey


class Keyrack:
    """An open keyrack: database, caches and services of this process.

    Management calls act as the local operator (the process holding the database and the
    secrets), like the CLI. Close it (or use ``async with``) to flush usage and release the
    database.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @classmethod
    async def open(cls, settings: Settings | None = None, *, migrate: bool = True) -> Keyrack:
        """Open the store named by ``settings`` (default: ``KEYRACK_*`` from the environment).

        Raises:
            ConfigurationError: No peppers or master keys are configured.
        """
        runtime = await open_runtime(settings or Settings(), run_migrations=migrate)
        runtime.start_background()
        return cls(runtime)

    async def verify(self, key: str, *, tenant_id: str | None = None) -> VerifyResult:
        """Verify ``key``; with ``tenant_id``, another tenant's key answers ``NOT_FOUND``."""
        return await self.runtime.verifier.verify(key, tenant_scope=tenant_id)

    async def create_tenant(
        self, name: str, *, slug: str | None = None, key_prefix: str | None = None
    ) -> Tenant:
        """Create a tenant."""
        return await self.runtime.tenants.create(
            OPERATOR, name=name, slug=slug, key_prefix=key_prefix
        )

    async def create_key(
        self,
        tenant_id: str,
        name: str,
        *,
        expires_at: datetime | None = None,
        owner_id: str | None = None,
        meta: JsonObject | None = None,
        permissions: Sequence[str] = (),
        roles: Sequence[str] = (),
        description: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it with its secret (shown this once)."""
        spec = NewKey(
            name=name,
            description=description,
            expires_at=expires_at,
            owner_id=owner_id,
            meta=meta or {},
            permissions=tuple(permissions),
            roles=tuple(roles),
        )
        return await self.runtime.keys.create(OPERATOR, tenant_id, spec)

    async def revoke_key(self, tenant_id: str, key_id: str) -> ApiKey:
        """Revoke a key; verify answers ``REVOKED`` at once in this process."""
        return await self.runtime.keys.set_status(OPERATOR, tenant_id, key_id, "revoke")

    async def close(self) -> None:
        """Flush pending usage and close the database."""
        await self.runtime.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
