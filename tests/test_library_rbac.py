"""Permissions and roles through the embedded library, as a Python service would manage them."""

import pytest

from keyrack import InvalidInput, Keyrack, NotFound, Outcome
from keyrack.domain.verification import VerifyFacts

pytestmark = pytest.mark.anyio


async def _code(kr: Keyrack, secret: str, query: str) -> Outcome:
    result = await kr.runtime.verifier.verify(secret, facts=VerifyFacts(permissions=query))
    return result.outcome


async def test_permissions_and_roles_lifecycle(settings):
    async with await Keyrack.open(settings) as kr:
        tenant = await kr.create_tenant("Acme")
        chat = await kr.create_permission(tenant.id, "chat.write", description="send")
        role = await kr.create_role(tenant.id, "writer", permissions=["chat.write", "docs.*"])
        key, secret = await kr.create_key(tenant.id, "backend", roles=["writer"])

        assert ("chat.write", "send") == (chat.slug, chat.description)
        assert chat == await kr.get_permission(tenant.id, chat.id)
        assert ["chat.write", "docs.*"] == [
            p.slug for p in (await kr.list_permissions(tenant.id)).items
        ]
        assert [role] == list((await kr.list_roles(tenant.id)).items)
        assert role == await kr.get_role(tenant.id, role.id)
        assert Outcome.VALID is await _code(kr, secret, "docs.read AND chat.write")

        updated = await kr.update_role(
            tenant.id, role.id, name="editor", permissions=["docs.*"], description=None
        )
        assert ("editor", ("docs.*",), None) == (
            updated.name,
            updated.permissions,
            updated.description,
        )
        assert Outcome.INSUFFICIENT_PERMISSIONS is await _code(kr, secret, "chat.write")
        described = await kr.update_role(tenant.id, role.id, description="edits")
        assert ("editor", "edits") == (described.name, described.description)

        await kr.delete_permission(tenant.id, chat.id)
        await kr.delete_role(tenant.id, role.id)
        assert Outcome.INSUFFICIENT_PERMISSIONS is await _code(kr, secret, "docs.read")
        assert [] == list((await kr.list_roles(tenant.id)).items)
        with pytest.raises(NotFound):
            await kr.get_role(tenant.id, role.id)
        with pytest.raises(InvalidInput):
            await kr.create_permission(tenant.id, "Not A Slug")
        record = (await kr.verify(secret)).record
        assert record is not None
        assert (key.id, ()) == (record.key_id, record.roles)
