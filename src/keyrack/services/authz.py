"""Who may do what: one check used by every management use case.

A tenant-scoped principal never learns that another tenant's objects exist: asking for them
answers ``TenantNotFound`` (404), checked before the permission so a 403 leaks nothing.
"""

from __future__ import annotations

from typing import Final

from keyrack.domain.permissions import (
    BOOTSTRAP_PERMISSIONS,
    OWN_KEYS_PERMISSIONS,
    Permission,
    Principal,
    PrincipalKind,
)
from keyrack.errors import PermissionDenied, TenantNotFound

OPERATOR: Final = Principal(
    kind=PrincipalKind.OPERATOR,
    id="cli",
    tenant_id=None,
    permissions=BOOTSTRAP_PERMISSIONS | {Permission.KEYS_REVEAL, Permission.VAULT_REVEAL},
    may_grant_reveal=True,
)
"""The principal of the local CLI: whoever holds the database and the secrets file."""


def authorize(
    principal: Principal, permission: Permission, *, tenant_id: str | None, own: bool = False
) -> None:
    """Require ``permission`` for an action on ``tenant_id`` (``None``: the platform itself).

    Args:
        principal: The caller.
        permission: What the action needs.
        tenant_id: The tenant acted on, or ``None`` for a platform action.
        own: The action narrows itself to the caller's own keys when
            ``principal.own_keys_only`` says so (key use cases); every other action refuses
            an owner-restricted principal.

    Raises:
        TenantNotFound: The principal cannot see ``tenant_id``.
        PermissionDenied: A platform action by a tenant-level principal, or the principal
            lacks ``permission``.
    """
    if tenant_id is None:
        if not principal.is_platform:
            raise PermissionDenied("this action needs a platform-scoped credential")
        held = principal.permissions
    else:
        found = principal.permissions_in(tenant_id)
        if found is None:
            raise TenantNotFound
        held = found
        if (
            not own
            and permission in OWN_KEYS_PERMISSIONS
            and principal.own_keys_only(tenant_id) is not None
        ):
            raise PermissionDenied("members manage only their own keys")
    if permission not in held:
        raise PermissionDenied(f"this action needs the '{permission}' permission")
