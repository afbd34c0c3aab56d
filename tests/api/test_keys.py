import asyncio

import pytest

pytestmark = pytest.mark.anyio


def _keys(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/keys"


class TestCreate:
    async def test_answers_the_key_and_its_secret_once(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(
            tenant["id"], name="k", description="d", meta={"a": [1, {"b": 2}]}
        )
        assert ("k", "d", "active", {"a": [1, {"b": 2}]}) == (
            key["name"],
            key["description"],
            key["status"],
            key["meta"],
        )
        assert secret.startswith(key["start"])
        got = await api.client.get(f"{_keys(tenant['id'])}/{key['id']}", headers=api.auth())
        assert secret not in got.text
        listed = await api.client.get(_keys(tenant["id"]), headers=api.auth())
        assert secret not in listed.text

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({}, id="no-name"),
            pytest.param({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, id="past-expiry"),
            pytest.param({"name": "k", "expires_at": "2030-01-01T00:00:00"}, id="naive-expiry"),
            pytest.param({"name": "k", "expires_at": "soon"}, id="bad-expiry"),
            pytest.param({"name": "k", "meta": {"x": "y" * 17000}}, id="meta-too-big"),
            pytest.param(
                {"name": "k", "meta": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}},
                id="meta-too-deep",
            ),
            pytest.param({"name": "k", "meta": [1]}, id="meta-not-object"),
            pytest.param({"name": "k", "description": "d" * 1025}, id="long-description"),
            pytest.param({"name": "k", "status": "revoked"}, id="mass-assign-status"),
            pytest.param({"name": "k", "tenant_id": "ten_other"}, id="mass-assign-tenant"),
            pytest.param({"name": "k", "system": True}, id="mass-assign-system"),
            pytest.param({"name": "k", "permissions": "chat.write"}, id="permissions-not-list"),
        ],
    )
    async def test_bad_input_is_422_and_writes_nothing(self, api, body):
        tenant = await api.tenant()
        response = await api.client.post(_keys(tenant["id"]), json=body, headers=api.auth())
        assert 422 == response.status_code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [] == (await api.client.get(_keys(tenant["id"]), headers=api.auth())).json()["items"]

    async def test_meta_at_the_depth_limit_is_accepted(self, api):
        tenant = await api.tenant()
        meta = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
        key, _ = await api.key(tenant["id"], meta=meta)
        assert meta == key["meta"]

    async def test_unknown_tenant_is_404(self, api):
        response = await api.client.post(_keys("ten_nope"), json={"name": "k"}, headers=api.auth())
        assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])


class TestListAndGet:
    async def test_filters_and_cursor(self, api, clock):
        tenant = await api.tenant()
        a, _ = await api.key(tenant["id"], owner_id="alice")
        clock.advance(0.01)
        b, _ = await api.key(tenant["id"], owner_id="bob")
        clock.advance(0.01)
        c, _ = await api.key(tenant["id"], owner_id="alice")
        await api.client.post(f"{_keys(tenant['id'])}/{c['id']}/revoke", headers=api.auth())
        by_owner = await api.client.get(
            _keys(tenant["id"]), params={"owner_id": "alice"}, headers=api.auth()
        )
        assert [a["id"], c["id"]] == [k["id"] for k in by_owner.json()["items"]]
        by_status = await api.client.get(
            _keys(tenant["id"]), params={"status": "active"}, headers=api.auth()
        )
        assert [a["id"], b["id"]] == [k["id"] for k in by_status.json()["items"]]
        first = (
            await api.client.get(_keys(tenant["id"]), params={"limit": 2}, headers=api.auth())
        ).json()
        second = (
            await api.client.get(
                _keys(tenant["id"]),
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=api.auth(),
            )
        ).json()
        assert [a["id"], b["id"], c["id"]] == [k["id"] for k in first["items"] + second["items"]]
        assert second["next_cursor"] is None

    async def test_bad_status_filter_is_422(self, api):
        tenant = await api.tenant()
        response = await api.client.get(
            _keys(tenant["id"]), params={"status": "deleted"}, headers=api.auth()
        )
        assert 422 == response.status_code

    async def test_unknown_key_is_404(self, api):
        tenant = await api.tenant()
        response = await api.client.get(f"{_keys(tenant['id'])}/key_nope", headers=api.auth())
        assert (404, "key.not_found") == (response.status_code, response.json()["code"])


class TestUpdate:
    async def test_patch_changes_only_given_fields_and_null_clears(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"], description="d", owner_id="o", meta={"a": 1})
        await api.verify(secret)
        response = await api.client.patch(
            f"{_keys(tenant['id'])}/{key['id']}",
            json={"name": "renamed", "description": None, "meta": {"b": 2}},
            headers=api.auth(),
        )
        body = response.json()
        assert ("renamed", None, "o", {"b": 2}) == (
            body["name"],
            body["description"],
            body["owner_id"],
            body["meta"],
        )
        verified = (await api.verify(secret)).json()
        assert ("renamed", {"b": 2}) == (verified["name"], verified["meta"])

    @pytest.mark.parametrize("field", ["name", "meta", "permissions", "roles"])
    async def test_null_for_a_required_field_is_422(self, api, field):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"])
        response = await api.client.patch(
            f"{_keys(tenant['id'])}/{key['id']}", json={field: None}, headers=api.auth()
        )
        assert 422 == response.status_code

    async def test_expiry_set_then_cleared(self, api, clock):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        path = f"{_keys(tenant['id'])}/{key['id']}"
        await api.client.patch(
            path, json={"expires_at": "2027-01-15T08:00:10Z"}, headers=api.auth()
        )
        clock.advance(11)
        assert "EXPIRED" == (await api.verify(secret)).json()["code"]
        await api.client.patch(path, json={"expires_at": None}, headers=api.auth())
        assert "VALID" == (await api.verify(secret)).json()["code"]


class TestStatusActions:
    async def test_enable_and_disable_of_a_revoked_key_are_409(self, api):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"])
        path = f"{_keys(tenant['id'])}/{key['id']}"
        assert (
            "revoked"
            == (await api.client.post(f"{path}/revoke", headers=api.auth())).json()["status"]
        )
        assert 200 == (await api.client.post(f"{path}/revoke", headers=api.auth())).status_code
        for action in ("enable", "disable"):
            response = await api.client.post(f"{path}/{action}", headers=api.auth())
            assert (409, "key.revoked") == (response.status_code, response.json()["code"])

    async def test_rotate_of_a_revoked_key_is_409(self, api):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"])
        path = f"{_keys(tenant['id'])}/{key['id']}"
        await api.client.post(f"{path}/revoke", headers=api.auth())
        assert 409 == (await api.client.post(f"{path}/rotate", headers=api.auth())).status_code


class TestRotate:
    async def test_keeps_the_id_and_changes_the_start(self, api):
        tenant = await api.tenant()
        key, old = await api.key(tenant["id"])
        response = await api.client.post(
            f"{_keys(tenant['id'])}/{key['id']}/rotate",
            json={"grace_seconds": 5},
            headers=api.auth(),
        )
        body = response.json()
        assert (200, key["id"]) == (response.status_code, body["key"]["id"])
        assert body["secret"] != old
        assert body["secret"].startswith(body["key"]["start"])

    @pytest.mark.parametrize("grace", [-1, 31 * 24 * 3600 + 1, "10", 1.5, None])
    async def test_bad_grace_is_422(self, api, grace):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"])
        response = await api.client.post(
            f"{_keys(tenant['id'])}/{key['id']}/rotate",
            json={"grace_seconds": grace},
            headers=api.auth(),
        )
        assert 422 == response.status_code

    async def test_at_most_two_live_secrets(self, api):
        tenant = await api.tenant()
        key, first = await api.key(tenant["id"])
        path = f"{_keys(tenant['id'])}/{key['id']}/rotate"
        second = (
            await api.client.post(path, json={"grace_seconds": 600}, headers=api.auth())
        ).json()["secret"]
        third = (
            await api.client.post(path, json={"grace_seconds": 600}, headers=api.auth())
        ).json()["secret"]
        codes = [(await api.verify(s)).json()["code"] for s in (first, second, third)]
        assert ["EXPIRED", "VALID", "VALID"] == codes

    async def test_concurrent_rotations_yield_exactly_one_new_secret(self, api):
        tenant = await api.tenant()
        key, old = await api.key(tenant["id"])
        path = f"{_keys(tenant['id'])}/{key['id']}/rotate"
        responses = await asyncio.gather(
            *(
                api.client.post(path, json={"grace_seconds": 60}, headers=api.auth())
                for _ in range(5)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert [200, 409, 409, 409, 409] == statuses
        winner = next(r for r in responses if r.status_code == 200).json()["secret"]
        assert "VALID" == (await api.verify(winner)).json()["code"]
        assert "VALID" == (await api.verify(old)).json()["code"]
        losers = [r.json() for r in responses if r.status_code == 409]
        assert all(body["code"] == "concurrent_update" for body in losers)


class TestCrossTenant:
    async def test_every_key_route_answers_404_for_another_tenants_key(self, api):
        mine = await api.tenant("Mine")
        theirs = await api.tenant("Theirs")
        their_key, _ = await api.key(theirs["id"])
        scoped = await api.service_account(mine["id"], ["keys.read", "keys.write"])
        h = api.auth(scoped)
        # Their key under my tenant path: not found in my tenant.
        mine_path = f"{_keys(mine['id'])}/{their_key['id']}"
        # My credential on their tenant path: their tenant does not exist for me.
        their_path = f"{_keys(theirs['id'])}/{their_key['id']}"
        for path in (mine_path, their_path):
            assert 404 == (await api.client.get(path, headers=h)).status_code
            assert 404 == (await api.client.patch(path, json={"name": "x"}, headers=h)).status_code
            assert 404 == (await api.client.delete(path, headers=h)).status_code
            for action in ("rotate", "revoke", "disable", "enable"):
                assert 404 == (await api.client.post(f"{path}/{action}", headers=h)).status_code
        assert 404 == (await api.client.get(_keys(theirs["id"]), headers=h)).status_code
        created = await api.client.post(_keys(theirs["id"]), json={"name": "x"}, headers=h)
        assert 404 == created.status_code
        unchanged = await api.client.get(their_path, headers=api.auth())
        assert ("active", "test key") == (unchanged.json()["status"], unchanged.json()["name"])

    async def test_reader_cannot_write(self, api):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"])
        reader = await api.service_account(tenant["id"], ["keys.read"])
        path = f"{_keys(tenant['id'])}/{key['id']}"
        assert 200 == (await api.client.get(path, headers=api.auth(reader))).status_code
        assert (
            403 == (await api.client.post(f"{path}/revoke", headers=api.auth(reader))).status_code
        )
