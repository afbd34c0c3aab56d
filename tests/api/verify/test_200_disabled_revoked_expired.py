from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.anyio


async def _action(api, tenant_id, key_id, action, **body):
    response = await api.client.post(
        f"/v1/tenants/{tenant_id}/keys/{key_id}/{action}", json=body or None, headers=api.auth()
    )
    assert 200 == response.status_code, response.text
    return response.json()


class TestDisabled:
    async def test_disabled_then_enabled(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        await api.verify(secret)  # warm the cache: the change must still be seen at once
        await _action(api, tenant["id"], key["id"], "disable")
        body = (await api.verify(secret)).json()
        assert (False, "DISABLED", key["id"]) == (body["valid"], body["code"], body["key_id"])
        await _action(api, tenant["id"], key["id"], "enable")
        assert "VALID" == (await api.verify(secret)).json()["code"]


class TestRevoked:
    async def test_revoked_is_seen_by_the_next_verify(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        await api.verify(secret)
        await _action(api, tenant["id"], key["id"], "revoke")
        assert "REVOKED" == (await api.verify(secret)).json()["code"]

    async def test_revoked_wins_over_expired(self, api, clock):
        tenant = await api.tenant()
        expiry = datetime.fromtimestamp(clock.now() + 10, UTC).isoformat()
        key, secret = await api.key(tenant["id"], expires_at=expiry)
        await _action(api, tenant["id"], key["id"], "revoke")
        clock.advance(20)
        assert "REVOKED" == (await api.verify(secret)).json()["code"]


class TestExpired:
    async def test_key_expiry(self, api, clock):
        tenant = await api.tenant()
        expiry = datetime.fromtimestamp(clock.now() + 10, UTC).isoformat()
        _, secret = await api.key(tenant["id"], expires_at=expiry)
        assert "VALID" == (await api.verify(secret)).json()["code"]
        clock.advance(10)
        assert "EXPIRED" == (await api.verify(secret)).json()["code"]

    async def test_old_secret_after_rotation_grace(self, api, clock):
        tenant = await api.tenant()
        key, old = await api.key(tenant["id"])
        new = (await _action(api, tenant["id"], key["id"], "rotate", grace_seconds=30))["secret"]
        clock.advance(30)
        assert "EXPIRED" == (await api.verify(old)).json()["code"]
        assert "VALID" == (await api.verify(new)).json()["code"]

    async def test_rotation_without_grace_ends_the_old_secret_now(self, api):
        tenant = await api.tenant()
        key, old = await api.key(tenant["id"])
        await api.verify(old)
        await _action(api, tenant["id"], key["id"], "rotate")
        assert "EXPIRED" == (await api.verify(old)).json()["code"]

    async def test_grace_never_outlives_the_key(self, api, clock):
        tenant = await api.tenant()
        expiry = datetime.fromtimestamp(clock.now() + 100, UTC).isoformat()
        key, old = await api.key(tenant["id"], expires_at=expiry)
        new = (await _action(api, tenant["id"], key["id"], "rotate", grace_seconds=3600))["secret"]
        clock.advance(100)
        assert "EXPIRED" == (await api.verify(old)).json()["code"]
        assert "EXPIRED" == (await api.verify(new)).json()["code"]
