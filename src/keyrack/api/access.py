"""Who may call which route: one table, enforced on every request and checked at start-up.

``ROUTES`` gives every management route the permission it needs and where that permission must
be held. The role side of the matrix (what a platform admin, tenant admin or member holds) is
``domain.permissions.ROLE_PERMISSIONS``; ``authorize`` joins the two. ``enforce`` runs before
every route's own code, and ``check_routes`` refuses to build an app with a route that has no
row (or a row without a route), so no endpoint can ship without a decision. The use cases
authorize again with the same function, so the library and the CLI get the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fastapi import Request
from fastapi.routing import APIRoute

from keyrack.api.deps import RuntimeDep, authenticate
from keyrack.domain.permissions import Permission, Principal, PrincipalKind
from keyrack.errors import ConfigurationError, PermissionDenied
from keyrack.services.authz import authorize

P = Permission


class Where(StrEnum):
    """Where a route's permission must be held."""

    PUBLIC = "public"
    """No credential (health, login, accepting an invitation)."""
    SELF = "self"
    """Any signed-in user, acting on itself (its profile, tokens, session)."""
    PLATFORM = "platform"
    """At platform level."""
    TENANT = "tenant"
    """In the tenant of the path's ``{tenant_id}``."""
    MACHINE = "machine"
    """A service account's root key holding the permission; the use case finds the tenant
    (in the body, the lease id, the key). Human sessions never call machine routes."""
    SCOPE = "scope"
    """Platform or tenant, whichever the caller is scoped to (service accounts' own routes,
    the tenant list)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A route's access rule; ``own`` lets a member through to act on its own keys."""

    where: Where
    permission: Permission | None = None
    own: bool = False


_T = "/v1/tenants/{tenant_id}"
_SA = "/v1/service-accounts/{account_id}"
_TSA = _T + "/service-accounts/{account_id}"

ROUTES: Final[dict[tuple[str, str], Rule]] = {
    ("GET", "/healthz"): Rule(Where.PUBLIC),
    ("GET", "/readyz"): Rule(Where.PUBLIC),
    # tenants
    ("POST", "/v1/tenants"): Rule(Where.PLATFORM, P.TENANTS_WRITE),
    ("GET", "/v1/tenants"): Rule(Where.SCOPE, P.TENANTS_READ),
    ("GET", _T): Rule(Where.TENANT, P.TENANTS_READ),
    ("PATCH", _T): Rule(Where.TENANT, P.TENANTS_WRITE),
    ("DELETE", _T): Rule(Where.PLATFORM, P.TENANTS_WRITE),
    # keys
    ("POST", _T + "/keys"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("GET", _T + "/keys"): Rule(Where.TENANT, P.KEYS_READ, own=True),
    ("GET", _T + "/keys/{key_id}"): Rule(Where.TENANT, P.KEYS_READ, own=True),
    ("PATCH", _T + "/keys/{key_id}"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("DELETE", _T + "/keys/{key_id}"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("POST", _T + "/keys/{key_id}/rotate"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("POST", _T + "/keys/{key_id}/revoke"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("POST", _T + "/keys/{key_id}/disable"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("POST", _T + "/keys/{key_id}/enable"): Rule(Where.TENANT, P.KEYS_WRITE, own=True),
    ("GET", _T + "/keys/{key_id}/credits"): Rule(Where.TENANT, P.KEYS_READ),
    ("POST", _T + "/keys/{key_id}/credits"): Rule(Where.TENANT, P.KEYS_WRITE),
    # identities, key permissions and roles
    ("POST", _T + "/identities"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("GET", _T + "/identities"): Rule(Where.TENANT, P.KEYS_READ),
    ("GET", _T + "/identities/{identity_id}"): Rule(Where.TENANT, P.KEYS_READ),
    ("PATCH", _T + "/identities/{identity_id}"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("DELETE", _T + "/identities/{identity_id}"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("GET", _T + "/identities/{identity_id}/credits"): Rule(Where.TENANT, P.KEYS_READ),
    ("POST", _T + "/identities/{identity_id}/credits"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("POST", _T + "/permissions"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("GET", _T + "/permissions"): Rule(Where.TENANT, P.KEYS_READ),
    ("GET", _T + "/permissions/{permission_id}"): Rule(Where.TENANT, P.KEYS_READ),
    ("DELETE", _T + "/permissions/{permission_id}"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("POST", _T + "/roles"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("GET", _T + "/roles"): Rule(Where.TENANT, P.KEYS_READ),
    ("GET", _T + "/roles/{role_id}"): Rule(Where.TENANT, P.KEYS_READ),
    ("PATCH", _T + "/roles/{role_id}"): Rule(Where.TENANT, P.KEYS_WRITE),
    ("DELETE", _T + "/roles/{role_id}"): Rule(Where.TENANT, P.KEYS_WRITE),
    # machine endpoints
    ("POST", "/v1/verify"): Rule(Where.MACHINE, P.KEYS_VERIFY),
    ("POST", "/v1/ratelimit"): Rule(Where.MACHINE, P.KEYS_VERIFY),
    ("POST", "/v1/leases/{lease_id}/release"): Rule(Where.MACHINE, P.KEYS_VERIFY),
    ("PUT", _T + "/users/{user_id}/system-keys/{name}"): Rule(Where.MACHINE, P.SYSTEM_KEYS_MANAGE),
    ("DELETE", _T + "/users/{user_id}/system-keys/{name}"): Rule(
        Where.MACHINE, P.SYSTEM_KEYS_MANAGE
    ),
    # service accounts
    ("POST", "/v1/service-accounts"): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", "/v1/service-accounts"): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", _SA): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", _SA + "/root-keys"): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("POST", _SA + "/root-keys"): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("DELETE", _SA + "/root-keys/{root_key_id}"): Rule(Where.PLATFORM, P.SERVICE_ACCOUNTS_WRITE),
    ("POST", _T + "/service-accounts"): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", _T + "/service-accounts"): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", _TSA): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    ("GET", _TSA + "/root-keys"): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    ("POST", _TSA + "/root-keys"): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    ("DELETE", _TSA + "/root-keys/{root_key_id}"): Rule(Where.TENANT, P.SERVICE_ACCOUNTS_WRITE),
    # people
    ("POST", "/v1/auth/login"): Rule(Where.PUBLIC),
    ("POST", "/v1/invitations/accept"): Rule(Where.PUBLIC),
    ("POST", "/v1/auth/logout"): Rule(Where.SELF),
    ("GET", "/v1/users/me"): Rule(Where.SELF),
    ("POST", "/v1/users/me/tokens"): Rule(Where.SELF),
    ("GET", "/v1/users/me/tokens"): Rule(Where.SELF),
    ("DELETE", "/v1/users/me/tokens/{token_id}"): Rule(Where.SELF),
    ("POST", "/v1/admin/stop-impersonation"): Rule(Where.SELF),
    ("POST", "/v1/admin/impersonate"): Rule(Where.PLATFORM, P.IMPERSONATE),
    ("POST", "/v1/admin/users"): Rule(Where.PLATFORM, P.USERS_WRITE),
    ("GET", "/v1/admin/users"): Rule(Where.PLATFORM, P.USERS_READ),
    ("GET", "/v1/admin/users/{user_id}"): Rule(Where.PLATFORM, P.USERS_READ),
    ("POST", _T + "/members"): Rule(Where.TENANT, P.MEMBERS_WRITE),
    ("GET", _T + "/members"): Rule(Where.TENANT, P.MEMBERS_READ),
    ("GET", _T + "/members/{user_id}"): Rule(Where.TENANT, P.MEMBERS_READ),
    ("PATCH", _T + "/members/{user_id}"): Rule(Where.TENANT, P.MEMBERS_WRITE),
    ("DELETE", _T + "/members/{user_id}"): Rule(Where.TENANT, P.MEMBERS_WRITE),
    ("GET", _T + "/users"): Rule(Where.TENANT, P.MEMBERS_READ),
    ("POST", _T + "/invitations"): Rule(Where.TENANT, P.MEMBERS_WRITE),
    ("GET", _T + "/invitations"): Rule(Where.TENANT, P.MEMBERS_READ),
    ("POST", _T + "/invitations/{invitation_id}/revoke"): Rule(Where.TENANT, P.MEMBERS_WRITE),
}


def check(principal: Principal, rule: Rule, *, tenant_id: str | None) -> None:
    """Apply ``rule`` to an authenticated caller.

    Raises:
        TenantNotFound: The caller cannot see ``tenant_id``.
        PermissionDenied: The caller may not call the route.
    """
    if rule.where is Where.SELF:
        if not principal.is_user:
            raise PermissionDenied("this route is for signed-in users")
        return
    permission = rule.permission
    if permission is None:  # pragma: no cover - the table gives every such rule a permission
        raise ConfigurationError("route rule without a permission")
    if rule.where is Where.MACHINE:
        if principal.kind not in (PrincipalKind.SERVICE_ACCOUNT, PrincipalKind.OPERATOR):
            raise PermissionDenied("this route is for service accounts: call it with a root key")
        if tenant_id is not None:
            authorize(principal, permission, tenant_id=tenant_id)
        elif permission not in principal.permissions:
            raise PermissionDenied(f"this action needs the '{permission}' permission")
        return
    if rule.where is Where.SCOPE and principal.is_user:
        return  # users list the tenants they belong to; the use case narrows the list
    scope = {
        Where.PLATFORM: None,
        Where.SCOPE: principal.tenant_id,
        Where.TENANT: tenant_id,
    }[rule.where]
    authorize(principal, permission, tenant_id=scope, own=rule.own)


def rule_for(request: Request) -> Rule:
    """The rule of the route serving ``request``."""
    route = request.scope["route"]
    return ROUTES[(request.method, route.path)]


async def enforce(request: Request, runtime: RuntimeDep) -> None:
    """Dependency of every route: authenticate unless public, then apply its row of ``ROUTES``.

    Raises:
        AuthenticationFailed: A non-public route without a live credential.
    """
    rule = rule_for(request)
    if rule.where is Where.PUBLIC:
        return
    principal = await authenticate(request, runtime, None)
    check(principal, rule, tenant_id=request.path_params.get("tenant_id"))


def check_routes(routes: list[tuple[str, str]]) -> None:
    """Refuse an app that serves a route without a row in ``ROUTES``.

    (A row without a route is harmless at run time; a test keeps the table free of them.)

    Raises:
        ConfigurationError: A route without a rule.
    """
    missing = set(routes) - ROUTES.keys()
    if missing:
        raise ConfigurationError(
            f"api.access.ROUTES has no rule for {sorted(missing)}: add one before serving it"
        )


def served_routes(api_routes: list[APIRoute]) -> list[tuple[str, str]]:
    """``(method, path)`` of every API route (HEAD and OPTIONS aside)."""
    return [
        (method, route.path)
        for route in api_routes
        for method in sorted(route.methods or ())
        if method not in ("HEAD", "OPTIONS")
    ]
