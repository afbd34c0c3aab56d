"""Who may do what: one check used by every management use case.

A tenant-scoped principal never learns that another tenant's objects exist: asking for them
answers ``TenantNotFound`` (404), checked before the permission so a 403 leaks nothing.
"""

from __future__ import annotations

from typing import Final

from keyrack.domain.permissions import BOOTSTRAP_PERMISSIONS, Permission, Principal
from keyrack.errors import PermissionDenied, TenantNotFound

OPERATOR: Final = Principal(
    kind="operator",
    id="cli",
    tenant_id=None,
    permissions=BOOTSTRAP_PERMISSIONS | {Permission.KEYS_REVEAL, Permission.VAULT_REVEAL},
    may_grant_reveal=True,
)
"""The principal of the local CLI: whoever holds the database and the secrets file."""


def authorize(principal: Principal, permission: Permission, *, tenant_id: str | None) -> None:
    """Require ``permission`` for an action on ``tenant_id`` (``None``: the platform itself).

    Raises:
        TenantNotFound: A tenant-scoped principal asked about another tenant.
        PermissionDenied: A tenant-scoped principal asked for a platform action, or the
            principal lacks ``permission``.
    """
    if tenant_id is None:
        if not principal.is_platform:
            raise PermissionDenied("this action needs a platform-scoped credential")
    elif not principal.sees_tenant(tenant_id):
        raise TenantNotFound
    if permission not in principal.permissions:
        raise PermissionDenied(f"this action needs the '{permission}' permission")
