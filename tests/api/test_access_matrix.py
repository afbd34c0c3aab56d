"""The permission matrix (DESIGN.md §6): one test per role and route, generated from ``ROUTES``.

Every row of ``keyrack.api.access.ROUTES`` is called over HTTP by every kind of caller, and the
answer must be what the row and the role's permissions (``ROLE_PERMISSIONS``) say: let through
(whatever the use case then answers: 404 for a made-up id, 422 for an empty body), refused
(403), hidden (another tenant: 404 ``tenant.not_found``) or unauthenticated (401).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest

from keyrack.api.access import ROUTES, Rule, Where
from keyrack.api.app import create_app
from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.config import Settings, generate_secrets_file
from keyrack.domain.people import TenantRole
from keyrack.domain.permissions import (
    BOOTSTRAP_PERMISSIONS,
    OWN_KEYS_PERMISSIONS,
    ROLE_PERMISSIONS,
    TENANT_ADMIN_PERMISSIONS,
    Permission,
    Principal,
)
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
DUMMY = "0" * 22


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Caller:
    """A kind of caller and what DESIGN.md §6 gives it."""

    name: str
    kind: str  # "user" | "sa" | "anonymous"
    platform: bool = False
    role_in_a: TenantRole | None = None
    sa_permissions: frozenset[Permission] = frozenset()
    sa_tenant: str | None = None  # "A" for a tenant-A service account
    credential: str = ""
    principal: Principal | None = field(default=None, repr=False)


CALLERS = [
    Caller("anonymous", "anonymous"),
    Caller("platform_admin", "user", platform=True),
    Caller("tenant_admin", "user", role_in_a=TenantRole.ADMIN),
    Caller("tenant_member", "user", role_in_a=TenantRole.MEMBER),
    Caller("other_tenant_admin", "user"),
    Caller("sa_platform", "sa", platform=True, sa_permissions=BOOTSTRAP_PERMISSIONS),
    Caller("sa_tenant_all", "sa", sa_permissions=TENANT_ADMIN_PERMISSIONS, sa_tenant="A"),
    Caller("sa_tenant_none", "sa", sa_tenant="A"),
]


def expected(caller: Caller, rule: Rule, *, has_tenant: bool) -> str:
    """What DESIGN.md §6 says: ``allow``, ``deny``, ``hidden`` or ``unauthenticated``."""
    if rule.where is Where.PUBLIC:
        return "allow"
    if caller.kind == "anonymous":
        return "unauthenticated"
    if rule.where is Where.SELF:
        return "allow" if caller.kind == "user" else "deny"
    permission = rule.permission
    assert permission is not None
    if caller.kind == "sa":
        if rule.where is Where.PLATFORM and not caller.platform:
            return "deny"
        return "allow" if permission in caller.sa_permissions else "deny"
    # users
    if rule.where is Where.MACHINE:
        return "deny"
    if rule.where is Where.SCOPE:
        return "allow"
    if caller.platform:
        return "allow" if permission in BOOTSTRAP_PERMISSIONS else "deny"
    if rule.where is Where.PLATFORM:
        return "deny"
    if caller.role_in_a is None:
        return "hidden"
    held = ROLE_PERMISSIONS[caller.role_in_a]
    if permission not in held:
        return "deny"
    if caller.role_in_a is TenantRole.MEMBER and permission in OWN_KEYS_PERMISSIONS:
        return "allow" if rule.own else "deny"
    return "allow"


@dataclass
class World:
    client: httpx.AsyncClient
    runtime: Runtime
    tenant_a: str
    callers: dict[str, Caller]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    secrets_file = tmp / "keyrack.secrets"
    generate_secrets_file(secrets_file)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp / 'matrix.db'}",
        secrets_file=secrets_file,
    )
    runtime = await open_runtime(settings, hasher=Argon2PasswordHasher.for_tests())
    try:
        root_key = await runtime.accounts.bootstrap()
        assert root_key is not None
        tenant_a = await runtime.tenants.create(OPERATOR, name="A")
        tenant_b = await runtime.tenants.create(OPERATOR, name="B")
        callers = {c.name: replace(c) for c in CALLERS}
        for caller in callers.values():
            if caller.kind == "user":
                user = await runtime.people.create_user(
                    OPERATOR,
                    email=f"{caller.name}@example.com",
                    name=caller.name,
                    password=PASSWORD,
                    is_platform_admin=caller.platform,
                )
                if caller.role_in_a is not None:
                    await runtime.people.add_member(
                        OPERATOR, tenant_a.id, user_id=user.id, role=caller.role_in_a
                    )
                if caller.name == "other_tenant_admin":
                    await runtime.people.add_member(
                        OPERATOR, tenant_b.id, user_id=user.id, role="admin"
                    )
                session = await runtime.auth.login(f"{caller.name}@example.com", PASSWORD)
                caller.principal = await runtime.auth.authenticate(session.secret)
            elif caller.kind == "sa":
                if caller.sa_tenant is None:
                    caller.credential = root_key
                else:
                    _, caller.credential = await runtime.accounts.create(
                        OPERATOR,
                        tenant_a.id,
                        name=caller.name,
                        permissions=caller.sa_permissions,
                    )
        app = create_app(settings, runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keyrack.test") as client:
            yield World(client, runtime, tenant_a.id, callers)
    finally:
        await runtime.close()


def _path(template: str, tenant_a: str, rule: Rule) -> str:
    values = {
        # Platform rules on a tenant path act on a made-up tenant, so no call can delete A.
        "tenant_id": f"ten_{DUMMY}" if rule.where is Where.PLATFORM else tenant_a,
        "key_id": f"key_{DUMMY}",
        "identity_id": f"idt_{DUMMY}",
        "permission_id": f"perm_{DUMMY}",
        "role_id": f"role_{DUMMY}",
        "account_id": f"sa_{DUMMY}",
        "root_key_id": f"rk_{DUMMY}",
        "user_id": f"usr_{DUMMY}",
        "invitation_id": f"inv_{DUMMY}",
        "token_id": f"tok_{DUMMY}",
        "lease_id": f"lse_{DUMMY}",
        "name": "matrix",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


CASES = [
    pytest.param(caller.name, method, path, id=f"{caller.name}-{method}-{path}")
    for (method, path) in sorted(ROUTES)
    for caller in CALLERS
]


@pytest.mark.parametrize(("caller_name", "method", "template"), CASES)
async def test_route_answers_as_the_matrix_says(
    world: World, caller_name: str, method: str, template: str
) -> None:
    caller = world.callers[caller_name]
    rule = ROUTES[(method, template)]
    headers = {}
    if caller.kind == "user":
        assert caller.principal is not None
        # A fresh personal token per call: a logout or stop-impersonation call revokes only it.
        issued = await world.runtime.auth.create_token(caller.principal, name="matrix")
        headers["Authorization"] = f"Bearer {issued.secret}"
    elif caller.kind == "sa":
        headers["Authorization"] = f"Bearer {caller.credential}"
    body: dict[str, object] | None = None if method in ("GET", "DELETE") else {}
    response = await world.client.request(
        method, _path(template, world.tenant_a, rule), json=body, headers=headers
    )
    code = response.json().get("code") if response.content else None
    want = expected(caller, rule, has_tenant="{tenant_id}" in template)
    if want == "allow":
        assert response.status_code not in (401, 403), response.text
        if rule.where is Where.TENANT:
            assert code != "tenant.not_found", response.text
    elif want == "deny":
        # The verify fast path authenticates root keys only: a user token is unknown there.
        allowed = (401, 403) if template == "/v1/verify" and caller.kind == "user" else (403,)
        assert response.status_code in allowed, response.text
    elif want == "hidden":
        assert (404, "tenant.not_found") == (response.status_code, code), response.text
    else:
        assert response.status_code == 401, response.text


async def test_every_rule_names_a_served_route(world: World) -> None:
    """No stale rows: each row of ``ROUTES`` is a route the app serves."""
    schema = world.client._transport.app.openapi()  # type: ignore[attr-defined]
    served = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert set() == set(ROUTES) - served
