import pytest

from keyrack.domain import keys as keyformat

pytestmark = pytest.mark.anyio

HOSTILE = [
    pytest.param("", id="empty"),
    pytest.param(" ", id="space"),
    pytest.param("kr_", id="prefix-only"),
    pytest.param("x" * 100_000, id="huge"),
    pytest.param(
        "kr_😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
        id="emoji",
    ),
    pytest.param("' OR 1=1 --", id="sql"),
    pytest.param("kr_\x00" + "A" * 38, id="nul"),
    pytest.param("\u202ekr_abc", id="bidi"),
]


class TestNotFound:
    @pytest.mark.parametrize("presented", HOSTILE)
    async def test_any_string_answers_not_found(self, api, presented):
        response = await api.verify(presented)
        assert 200 == response.status_code
        body = response.json()
        assert (False, "NOT_FOUND", None) == (body["valid"], body["code"], body["key_id"])

    async def test_well_formed_unknown_key(self, api):
        unknown = keyformat.generate("kr", entropy=bytes(24))
        assert "NOT_FOUND" == (await api.verify(unknown)).json()["code"]

    async def test_tampered_checksum(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"])
        last = secret[-1]
        tampered = secret[:-1] + ("A" if last != "A" else "B")
        assert "NOT_FOUND" == (await api.verify(tampered)).json()["code"]

    async def test_deleted_key(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        assert "VALID" == (await api.verify(secret)).json()["code"]
        deleted = await api.client.delete(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}", headers=api.auth()
        )
        assert 204 == deleted.status_code
        assert "NOT_FOUND" == (await api.verify(secret)).json()["code"]

    async def test_other_tenants_key_for_a_tenant_scoped_caller(self, api):
        mine = await api.tenant("Mine")
        theirs = await api.tenant("Theirs")
        _, their_secret = await api.key(theirs["id"])
        scoped = await api.service_account(mine["id"], ["keys.verify"])
        body = (await api.verify(their_secret, root_key=scoped)).json()
        assert ("NOT_FOUND", None, None) == (body["code"], body["key_id"], body["tenant_id"])

    async def test_root_key_is_never_an_end_user_key(self, api):
        assert "NOT_FOUND" == (await api.verify(api.root_key)).json()["code"]
