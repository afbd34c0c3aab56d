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

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from keyrack.config import Settings
from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.models import (
    DEFAULT_LEASE_TTL_SECONDS,
    ApiKey,
    Identity,
    JsonObject,
    Limits,
    PermissionDef,
    Role,
    Tenant,
)
from keyrack.domain.policy import build_policy
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import VerifyFacts, VerifyResult
from keyrack.runtime import Runtime, open_runtime
from keyrack.services import rbac
from keyrack.services.authz import OPERATOR
from keyrack.services.credits import Balance, CreditsOp
from keyrack.services.identities import IdentityChanges, NewIdentity
from keyrack.services.keys import UNSET, NewKey, _Unset
from keyrack.services.pagination import DEFAULT_LIMIT, Page
from keyrack.services.ratelimits import RateLimitAnswer


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

    async def verify(
        self,
        key: str,
        *,
        tenant_id: str | None = None,
        permissions: str | None = None,
        endpoint: str | None = None,
        ip: str | None = None,
        origin: str | None = None,
        tls: bool | None = None,
        cost: int = 1,
        tokens: int | None = None,
        ratelimits: Mapping[str, int] | None = None,
        spend: int = 0,
    ) -> VerifyResult:
        """Verify ``key`` for a request; the same checks and limits as ``POST /v1/verify``.

        Args:
            key: The presented key (any string).
            tenant_id: Answer ``NOT_FOUND`` for another tenant's key.
            permissions: A permission query (``"chat.write AND (a OR b)"``).
            endpoint: ``"METHOD /path"`` of the request.
            ip: The client's address.
            origin: The request's ``Origin``.
            tls: Whether the request came over TLS.
            cost: Units charged to credits and every rate limit.
            tokens: Tokens the request asks for (``max_tokens_per_request``).
            ratelimits: Cost per named rate limit, instead of ``cost``.
            spend: Micro-units charged to the budget.

        Raises:
            PermissionQuerySyntax: The permission query is malformed.
            InvalidInput: A number is out of bounds.
        """
        facts = VerifyFacts(
            permissions=permissions,
            endpoint=endpoint,
            ip=ip,
            origin=origin,
            tls=tls,
            tokens=tokens,
            cost=cost,
            ratelimits=tuple((ratelimits or {}).items()),
            spend=spend,
        )
        return await self.runtime.verifier.verify(key, tenant_scope=tenant_id, facts=facts)

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
        identity_id: str | None = None,
        ip_allowlist: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        allowed_endpoints: Sequence[str] = (),
        blocked_endpoints: Sequence[str] = (),
        require_tls: bool = False,
        max_tokens_per_request: int | None = None,
        rate_limits: Sequence[RateLimit] = (),
        credits: Credits | None = None,
        budget: Budget | None = None,
        max_concurrency: int | None = None,
        lease_ttl_seconds: int = DEFAULT_LEASE_TTL_SECONDS,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it with its secret (shown this once).

        Policy and limits mean what they mean on ``POST /v1/tenants/{id}/keys``; limits are
        domain values, e.g. ``RateLimit("requests", 100, window_ms=60_000)``,
        ``Credits(1000, Refill(RefillInterval.MONTHLY, 1000, day=1))``,
        ``Budget(5_000_000, BudgetPeriod.MONTH)``.

        Raises:
            InvalidInput: A value is out of bounds or malformed.
            IdentityNotFound: ``identity_id`` is not an identity of the tenant.
        """
        spec = NewKey(
            name=name,
            description=description,
            expires_at=expires_at,
            owner_id=owner_id,
            meta=meta or {},
            permissions=tuple(permissions),
            roles=tuple(roles),
            identity_id=identity_id,
            policy=build_policy(
                ip_allowlist=ip_allowlist,
                allowed_origins=allowed_origins,
                allowed_endpoints=allowed_endpoints,
                blocked_endpoints=blocked_endpoints,
                require_tls=require_tls,
                max_tokens_per_request=max_tokens_per_request,
            ),
            limits=Limits(
                rate_limits=tuple(rate_limits),
                credits=credits,
                budget=budget,
                max_concurrency=max_concurrency,
                lease_ttl_seconds=lease_ttl_seconds,
            ),
        )
        return await self.runtime.keys.create(OPERATOR, tenant_id, spec)

    async def credits(self, tenant_id: str, owner_id: str) -> Balance:
        """The live credits balance of a key (``key_…``) or identity (``idn_…``)."""
        return await self.runtime.credits.get(OPERATOR, tenant_id, owner_id)

    async def change_credits(
        self, tenant_id: str, owner_id: str, *, op: CreditsOp, amount: int | None
    ) -> Balance:
        """``set``, ``increment`` or ``decrement`` a balance atomically.

        Raises:
            InsufficientCredits: A decrement larger than the balance (nothing changes).
        """
        return await self.runtime.credits.change(
            OPERATOR, tenant_id, owner_id, op=op, amount=amount
        )

    async def ratelimit(
        self,
        namespace: str,
        identifier: str,
        *,
        limit: int,
        window_seconds: int,
        cost: int = 1,
        tenant_id: str | None = None,
    ) -> RateLimitAnswer:
        """Charge a standalone rate limit (``POST /v1/ratelimit``)."""
        return await self.runtime.limit_api.ratelimit(
            OPERATOR,
            tenant_id=tenant_id,
            namespace=namespace,
            identifier=identifier,
            limit=limit,
            window_seconds=window_seconds,
            cost=cost,
        )

    async def release_lease(self, lease_id: str) -> bool:
        """Give a concurrency lease back; whether it was still held."""
        return await self.runtime.limit_api.release(OPERATOR, lease_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> ApiKey:
        """Revoke a key; verify answers ``REVOKED`` at once in this process."""
        return await self.runtime.keys.set_status(OPERATOR, tenant_id, key_id, "revoke")

    async def create_identity(
        self,
        tenant_id: str,
        external_id: str,
        *,
        meta: JsonObject | None = None,
        rate_limits: Sequence[RateLimit] = (),
        credits: Credits | None = None,
    ) -> Identity:
        """Create an identity whose rate limits and credits all its keys share.

        ``credits`` is ``Credits(remaining, Refill(...))``; its ``refilled_at_ms`` is replaced
        by the creation time.
        """
        spec = NewIdentity(
            external_id=external_id,
            meta=meta or {},
            rate_limits=tuple(rate_limits),
            credits=credits,
        )
        return await self.runtime.identities.create(OPERATOR, tenant_id, spec)

    async def get_identity(self, tenant_id: str, identity_id: str) -> Identity:
        """One identity of the tenant (``IdentityNotFound`` if there is none)."""
        return await self.runtime.identities.get(OPERATOR, tenant_id, identity_id)

    async def list_identities(
        self,
        tenant_id: str,
        *,
        external_id: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Identity]:
        """A page of the tenant's identities, oldest first; ``external_id`` finds one."""
        return await self.runtime.identities.list(
            OPERATOR, tenant_id, external_id=external_id, limit=limit, cursor=cursor
        )

    async def update_identity(
        self,
        tenant_id: str,
        identity_id: str,
        *,
        external_id: str | _Unset = UNSET,
        meta: JsonObject | _Unset = UNSET,
        rate_limits: Sequence[RateLimit] | _Unset = UNSET,
        credits: Credits | _Unset | None = UNSET,
    ) -> Identity:
        """Change an identity; arguments left out stay as they are.

        ``rate_limits`` replaces the whole list; ``credits=None`` removes the credits, and
        ``Credits(...)`` replaces the configuration and the balance.
        """
        changes = IdentityChanges(
            external_id=external_id,
            meta=meta,
            rate_limits=rate_limits if isinstance(rate_limits, _Unset) else tuple(rate_limits),
            credits=credits,
        )
        return await self.runtime.identities.update(OPERATOR, tenant_id, identity_id, changes)

    async def delete_identity(self, tenant_id: str, identity_id: str) -> None:
        """Delete an identity; its keys stay, without the identity."""
        await self.runtime.identities.delete(OPERATOR, tenant_id, identity_id)

    async def create_permission(
        self, tenant_id: str, slug: str, *, description: str | None = None
    ) -> PermissionDef:
        """Create a permission slug (``chat.write``, ``documents.*``) in the tenant.

        Keys and roles also create the permissions they name on first use.
        """
        spec = rbac.NewPermission(slug=slug, description=description)
        return await self.runtime.rbac.create_permission(OPERATOR, tenant_id, spec)

    async def get_permission(self, tenant_id: str, permission_id: str) -> PermissionDef:
        """One permission of the tenant (``PermissionNotFound`` if there is none)."""
        return await self.runtime.rbac.get_permission(OPERATOR, tenant_id, permission_id)

    async def list_permissions(
        self, tenant_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[PermissionDef]:
        """A page of the tenant's permissions, oldest first."""
        return await self.runtime.rbac.list_permissions(
            OPERATOR, tenant_id, limit=limit, cursor=cursor
        )

    async def delete_permission(self, tenant_id: str, permission_id: str) -> None:
        """Delete a permission; it is taken off every role and key of the tenant at once."""
        await self.runtime.rbac.delete_permission(OPERATOR, tenant_id, permission_id)

    async def create_role(
        self,
        tenant_id: str,
        name: str,
        *,
        permissions: Sequence[str] = (),
        description: str | None = None,
    ) -> Role:
        """Create a role bundling ``permissions`` (missing ones are created in the tenant)."""
        spec = rbac.NewRole(name=name, description=description, permissions=tuple(permissions))
        return await self.runtime.rbac.create_role(OPERATOR, tenant_id, spec)

    async def get_role(self, tenant_id: str, role_id: str) -> Role:
        """One role of the tenant (``RoleNotFound`` if there is none)."""
        return await self.runtime.rbac.get_role(OPERATOR, tenant_id, role_id)

    async def list_roles(
        self, tenant_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[Role]:
        """A page of the tenant's roles, oldest first."""
        return await self.runtime.rbac.list_roles(OPERATOR, tenant_id, limit=limit, cursor=cursor)

    async def update_role(
        self,
        tenant_id: str,
        role_id: str,
        *,
        name: str | rbac.Unset = rbac.UNSET,
        description: str | rbac.Unset | None = rbac.UNSET,
        permissions: Sequence[str] | rbac.Unset = rbac.UNSET,
    ) -> Role:
        """Change a role; arguments left out stay as they are.

        ``permissions`` replaces the whole list and ``description=None`` removes the
        description. Keys holding the role see the change on their next verify.
        """
        changes = rbac.RoleChanges(
            name=name,
            description=description,
            permissions=permissions if isinstance(permissions, rbac.Unset) else tuple(permissions),
        )
        return await self.runtime.rbac.update_role(OPERATOR, tenant_id, role_id, changes)

    async def delete_role(self, tenant_id: str, role_id: str) -> None:
        """Delete a role; it is taken off every key of the tenant at once."""
        await self.runtime.rbac.delete_role(OPERATOR, tenant_id, role_id)

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
