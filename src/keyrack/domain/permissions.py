"""Management permissions and the rules for holding and granting them (DESIGN.md §6, §11)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


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


class Scope(StrEnum):
    """Whether an action concerns one tenant or the whole platform."""

    TENANT = "tenant"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of the management API.

    ``tenant_id`` is ``None`` for platform-wide principals. ``may_grant_reveal`` marks the
    bootstrap account (and, later, platform admins), who may grant the two reveal permissions
    without exercising them.
    """

    kind: str
    id: str
    tenant_id: str | None
    permissions: frozenset[Permission]
    may_grant_reveal: bool = False

    @property
    def is_platform(self) -> bool:
        """Whether the principal acts across every tenant."""
        return self.tenant_id is None

    def sees_tenant(self, tenant_id: str) -> bool:
        """Whether objects of ``tenant_id`` exist for this principal (else they read as 404)."""
        return self.tenant_id is None or self.tenant_id == tenant_id

    def holds(self, permission: Permission) -> bool:
        """Whether the principal holds ``permission``."""
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
    granter: Principal, requested: frozenset[Permission], *, tenant_scoped: bool
) -> tuple[frozenset[Permission], frozenset[Permission]]:
    """Check a grant of ``requested`` permissions by ``granter``.

    Returns:
        ``(beyond_granter, wrong_scope)``: permissions the granter may not grant (403) and
        platform-only permissions asked for a tenant-scoped account (422). Both empty means the
        grant is allowed.
    """
    grantable = granter.permissions | (REVEAL_PERMISSIONS if granter.may_grant_reveal else set())
    beyond = requested - grantable
    wrong_scope = requested & PLATFORM_ONLY if tenant_scoped else frozenset()
    return frozenset(beyond), frozenset(wrong_scope)
