import pytest

pytestmark = pytest.mark.anyio


class TestValid:
    async def test_answers_the_key_facts(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(
            tenant["id"],
            name="backend",
            owner_id="user_42",
            meta={"plan": "pro"},
            permissions=["chat.write"],
            expires_at="2030-01-01T00:00:00Z",
        )
        response = await api.verify(secret)
        assert 200 == response.status_code
        assert {
            "valid": True,
            "code": "VALID",
            "key_id": key["id"],
            "tenant_id": tenant["id"],
            "identity": None,
            "owner_id": "user_42",
            "name": "backend",
            "meta": {"plan": "pro"},
            "permissions": ["chat.write"],
            "roles": [],
            "expires_at": "2030-01-01T00:00:00Z",
            "credits": None,
            "budget": None,
            "ratelimits": [],
            "lease_id": None,
            "reason": None,
        } == response.json()

    async def test_tenant_scoped_caller_verifies_its_own_keys(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"])
        scoped = await api.service_account(tenant["id"], ["keys.verify"])
        response = await api.verify(secret, root_key=scoped)
        assert "VALID" == response.json()["code"]

    async def test_repeated_verifies_stay_valid_and_record_last_use(self, api, clock):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        for _ in range(3):
            assert (await api.verify(secret)).json()["valid"] is True
        await api.runtime.writes.flush()
        got = await api.client.get(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}", headers=api.auth()
        )
        assert got.json()["last_used_at"] is not None

    async def test_rotated_key_verifies_with_both_secrets_during_grace(self, api, clock):
        tenant = await api.tenant()
        key, old = await api.key(tenant["id"])
        rotated = await api.client.post(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}/rotate",
            json={"grace_seconds": 60},
            headers=api.auth(),
        )
        new = rotated.json()["secret"]
        clock.advance(59)
        assert "VALID" == (await api.verify(old)).json()["code"]
        assert "VALID" == (await api.verify(new)).json()["code"]
        assert key["id"] == (await api.verify(new)).json()["key_id"]


class TestShape:
    async def test_the_fast_renderer_matches_the_documented_response_model(self, api):
        """verify_body builds dicts for speed; VerifyResponse documents them: they must agree."""
        from keyrack.schemas.verify import VerifyResponse

        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], meta={"a": 1}, expires_at="2030-01-01T00:00:00Z")
        for presented in (secret, "not a key"):
            body = (await api.verify(presented)).json()
            assert set(VerifyResponse.model_fields) == set(body)
            assert body == VerifyResponse.model_validate(body).model_dump(mode="json")
