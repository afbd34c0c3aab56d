"""A key's granted permissions on the cold verify: its own plus its roles' (like the SQL lookup)."""

import pytest

from keyrack.domain.verification import Outcome, VerifyFacts
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey
from keyrack.services.rbac import NewRole

pytestmark = pytest.mark.anyio


@pytest.fixture
async def roles(svc, tenant):
    await svc.rbac.create_role(
        OPERATOR, tenant.id, NewRole(name="reader", permissions=("docs.read",))
    )
    await svc.rbac.create_role(
        OPERATOR, tenant.id, NewRole(name="writer", permissions=("docs.write", "docs.read"))
    )


async def _secret(svc, tenant, *, permissions=(), roles=()):
    _, secret = await svc.keys.create(
        OPERATOR, tenant.id, NewKey(name="k", permissions=permissions, roles=roles)
    )
    return secret


class TestGranted:
    async def test_direct_permissions_and_those_of_every_role_are_granted(self, svc, tenant, roles):
        secret = await _secret(svc, tenant, permissions=("chat.write",), roles=("reader", "writer"))

        result = await svc.verifier.verify(secret)

        assert frozenset({"chat.write", "docs.read", "docs.write"}) == result.record.granted

    async def test_a_key_without_roles_is_granted_its_direct_permissions_in_one_statement(
        self, svc, tenant, roles
    ):
        secret = await _secret(svc, tenant, permissions=("chat.write",))
        before = svc.db.statements

        result = await svc.verifier.verify(secret)

        assert frozenset({"chat.write"}) == result.record.granted
        assert before + 1 == svc.db.statements

    async def test_a_key_with_roles_costs_a_second_statement(self, svc, tenant, roles):
        secret = await _secret(svc, tenant, roles=("reader",))
        before = svc.db.statements

        await svc.verifier.verify(secret)

        assert before + 2 == svc.db.statements

    async def test_a_permission_query_is_satisfied_through_a_role(self, svc, tenant, roles):
        secret = await _secret(svc, tenant, roles=("writer",))

        allowed = await svc.verifier.verify(
            secret, facts=VerifyFacts(permissions="docs.write AND docs.read")
        )
        refused = await svc.verifier.verify(secret, facts=VerifyFacts(permissions="chat.write"))

        assert Outcome.VALID == allowed.outcome
        assert Outcome.INSUFFICIENT_PERMISSIONS == refused.outcome

    async def test_a_deleted_role_grants_nothing(self, svc, tenant, roles):
        secret = await _secret(svc, tenant, permissions=("chat.write",), roles=("reader",))
        reader = next(r for r in svc.db.roles.values() if r.name == "reader")
        del svc.db.roles[reader.id]  # behind the service's back: the key still names it

        result = await svc.verifier.verify(secret)

        assert ("reader",) == result.record.roles
        assert frozenset({"chat.write"}) == result.record.granted
