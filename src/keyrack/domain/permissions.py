"""Management permissions and the rules for holding and granting them (DESIGN.md §6, §11).

``ROLE_PERMISSIONS`` is the matrix of DESIGN.md §6 as data: what a platform admin, a tenant
admin and a tenant member hold. Service accounts hold exactly what they were granted. Every
management use case asks ``services.authz.authorize`` (and every HTTP route the table in
``api.access``), which both read these sets, so the matrix lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from keyrack.domain.audit import NO_ORIGIN, Ref, RequestOrigin
from keyrack.domain.people import TenantRole


class Permission(StrEnum):
    """A management permission a service account can hold."""

    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    IMPERSONATE = "impersonate"
    TENANTS_READ = "tenants.read"
    TENANTS_WRITE = "tenants.write"
    KEYS_READ = "keys.read"
    KEYS_WRITE = "keys.write"
    KEYS_VERIFY = "keys.verify"
    KEYS_REVEAL = "keys.reveal"
    MEMBERS_READ = "members.read"
    MEMBERS_WRITE = "members.write"
    SERVICE_ACCOUNTS_WRITE = "service_accounts.write"
    VAULT_READ = "vault.read"
    VAULT_WRITE = "vault.write"
    VAULT_REVEAL = "vault.reveal"
    AUDIT_READ = "audit.read"
    USAGE_READ = "usage.read"
    SYSTEM_KEYS_MANAGE = "system_keys.manage"
    TOKENS_ISSUE = "tokens.issue"


REVEAL_PERMISSIONS: Final = frozenset({Permission.KEYS_REVEAL, Permission.VAULT_REVEAL})
PLATFORM_ONLY: Final = frozenset(
    {Permission.IMPERSONATE, Permission.USERS_READ, Permission.USERS_WRITE}
)
BOOTSTRAP_PERMISSIONS: Final = frozenset(Permission) - REVEAL_PERMISSIONS

TENANT_ADMIN_PERMISSIONS: Final = frozenset(
    {
        Permission.TENANTS_READ,
        Permission.KEYS_READ,
        Permission.KEYS_WRITE,
        Permission.KEYS_VERIFY,
        Permission.MEMBERS_READ,
        Permission.MEMBERS_WRITE,
        Permission.SERVICE_ACCOUNTS_WRITE,
        Permission.VAULT_READ,
        Permission.VAULT_WRITE,
        Permission.AUDIT_READ,
        Permission.USAGE_READ,
        Permission.SYSTEM_KEYS_MANAGE,
        Permission.TOKENS_ISSUE,
    }
)
"""A tenant admin's permissions in its tenant. The machine ones (``keys.verify``,
``system_keys.manage``, ``tokens.issue``) are exercised only through a service account's root
key (the machine endpoints take no user session); holding them lets the admin grant them."""
MACHINE_PERMISSIONS: Final = frozenset(
    {Permission.KEYS_VERIFY, Permission.SYSTEM_KEYS_MANAGE, Permission.TOKENS_ISSUE}
)
MEMBER_PERMISSIONS: Final = frozenset(
    {Permission.TENANTS_READ, Permission.KEYS_READ, Permission.KEYS_WRITE, Permission.USAGE_READ}
)
"""A member's key and usage permissions reach only the keys the member owns (``own_keys``)."""

PLATFORM_ADMIN_PERMISSIONS: Final = BOOTSTRAP_PERMISSIONS
"""Everything but the two reveal permissions, which a platform admin may still grant."""

ROLE_PERMISSIONS: Final[dict[TenantRole, frozenset[Permission]]] = {
    TenantRole.ADMIN: TENANT_ADMIN_PERMISSIONS,
    TenantRole.MEMBER: MEMBER_PERMISSIONS,
}
OWN_KEYS_PERMISSIONS: Final = frozenset(
    {Permission.KEYS_READ, Permission.KEYS_WRITE, Permission.USAGE_READ}
)
"""The permissions that an owner-restricted principal (a member) exercises on its own keys."""


class PrincipalKind(StrEnum):
    """What authenticated a management caller."""

    SERVICE_ACCOUNT = "service_account"
    USER = "user"
    OPERATOR = "operator"


class Scope(StrEnum):
    """Whether an action concerns one tenant or the whole platform."""

    TENANT = "tenant"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of the management API.

    A service account holds ``permissions`` in its one tenant, or platform-wide when
    ``tenant_id`` is ``None``. A user (``kind == "user"``) holds ``PLATFORM_ADMIN_PERMISSIONS``
    everywhere when a platform admin, else the permissions of its role in each tenant of
    ``memberships``; a member's key permissions reach only its own keys. ``may_grant_reveal``
    marks the bootstrap account and platform admins, who may grant the two reveal permissions
    without exercising them. ``impersonator`` is the platform caller acting as this user, and
    ``origin`` where the request came from, both for the audit trail.
    """

    kind: str
    id: str
    tenant_id: str | None
    permissions: frozenset[Permission]
    may_grant_reveal: bool = False
    is_platform_admin: bool = False
    memberships: tuple[tuple[str, TenantRole], ...] = ()
    impersonator: Ref | None = None
    token_id: str | None = None
    origin: RequestOrigin = NO_ORIGIN

    @property
    def ref(self) -> Ref:
        """The principal as an audit actor."""
        return Ref(str(self.kind), self.id)

    @property
    def is_user(self) -> bool:
        """Whether a human (or someone impersonating one) is calling."""
        return self.kind == PrincipalKind.USER

    @property
    def is_platform(self) -> bool:
        """Whether the principal acts across every tenant."""
        if self.kind == PrincipalKind.USER:
            return self.is_platform_admin
        return self.tenant_id is None

    def role_in(self, tenant_id: str) -> TenantRole | None:
        """A user's role in ``tenant_id`` (``None``: not a member, or not a user)."""
        for member_of, role in self.memberships:
            if member_of == tenant_id:
                return role
        return None

    def permissions_in(self, tenant_id: str) -> frozenset[Permission] | None:
        """What the principal holds in ``tenant_id``; ``None`` when the tenant is invisible."""
        if self.is_platform:
            return self.permissions
        if self.kind == PrincipalKind.USER:
            role = self.role_in(tenant_id)
            return None if role is None else ROLE_PERMISSIONS[role]
        return self.permissions if self.tenant_id == tenant_id else None

    def sees_tenant(self, tenant_id: str) -> bool:
        """Whether objects of ``tenant_id`` exist for this principal (else they read as 404)."""
        return self.permissions_in(tenant_id) is not None

    def own_keys_only(self, tenant_id: str) -> str | None:
        """The owner id the principal's key access is limited to in ``tenant_id``, if any."""
        is_member = self.kind == PrincipalKind.USER and not self.is_platform
        return self.id if is_member and self.role_in(tenant_id) is TenantRole.MEMBER else None

    def holds(self, permission: Permission) -> bool:
        """Whether the principal holds ``permission`` at platform level."""
        return permission in self.permissions


def parse_permissions(names: Iterable[str]) -> frozenset[Permission]:
    """Turn permission names into ``Permission`` values.

    Raises:
        ValueError: A name is not a known permission (the message names it).
    """
    result = set()
    for name in names:
        try:
            result.add(Permission(name))
        except ValueError:
            raise ValueError(f"unknown permission: {name!r}") from None
    return frozenset(result)


def grant_violations(
    granter: Principal,
    requested: frozenset[Permission],
    *,
    tenant_scoped: bool,
    in_tenant: str | None = None,
) -> tuple[frozenset[Permission], frozenset[Permission]]:
    """Check a grant of ``requested`` permissions by ``granter``.

    Args:
        granter: Who grants.
        requested: What is granted.
        tenant_scoped: Whether the receiving account is scoped to a tenant.
        in_tenant: The tenant the grant is made in: the granter may grant what it holds
            there (a tenant admin's role permissions); ``None`` counts platform holdings only.

    Returns:
        ``(beyond_granter, wrong_scope)``: permissions the granter may not grant (403) and
        platform-only permissions asked for a tenant-scoped account (422). Both empty means the
        grant is allowed.
    """
    held = granter.permissions if in_tenant is None else granter.permissions_in(in_tenant)
    grantable = (held or frozenset()) | (
        REVEAL_PERMISSIONS if granter.may_grant_reveal else frozenset()
    )
    beyond = requested - grantable
    wrong_scope = requested & PLATFORM_ONLY if tenant_scoped else frozenset()
    return frozenset(beyond), frozenset(wrong_scope)
