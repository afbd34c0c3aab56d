import pytest

pytestmark = pytest.mark.anyio


class TestTenants:
    async def test_create_get_update_delete(self, api):
        created = await api.tenant("Acme Corp", key_prefix="sk_live")
        assert ("Acme Corp", "acme-corp", "sk_live") == (
            created["name"],
            created["slug"],
            created["key_prefix"],
        )
        path = f"/v1/tenants/{created['id']}"
        assert created == (await api.client.get(path, headers=api.auth())).json()
        patched = await api.client.patch(path, json={"name": "Acme Inc"}, headers=api.auth())
        assert (200, "Acme Inc", "acme-corp") == (
            patched.status_code,
            patched.json()["name"],
            patched.json()["slug"],
        )
        assert 204 == (await api.client.delete(path, headers=api.auth())).status_code
        assert 404 == (await api.client.get(path, headers=api.auth())).status_code

    async def test_keys_use_the_tenant_prefix(self, api):
        tenant = await api.tenant(key_prefix="sk_test")
        key, secret = await api.key(tenant["id"])
        assert secret.startswith("sk_test_")
        assert key["start"] == secret[: len("sk_test_") + 4]

    async def test_deleting_a_tenant_kills_its_keys(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"])
        await api.verify(secret)
        await api.client.delete(f"/v1/tenants/{tenant['id']}", headers=api.auth())
        assert "NOT_FOUND" == (await api.verify(secret)).json()["code"]

    async def test_pagination_walks_every_tenant_once(self, api):
        ids = [(await api.tenant(f"T{i}"))["id"] for i in range(5)]
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await api.client.get("/v1/tenants", params=params, headers=api.auth())).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # Ids order by creation millisecond, then randomly within one: each exactly once.
        assert sorted(ids) == seen

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            pytest.param({"name": ""}, 422, id="empty-name"),
            pytest.param({"name": "x" * 256}, 422, id="long-name"),
            pytest.param({"name": 5}, 422, id="int-name"),
            pytest.param({"name": "a\x00b"}, 422, id="nul-in-name"),
            pytest.param({"name": "A", "slug": "Bad Slug"}, 422, id="bad-slug"),
            pytest.param({"name": "A", "key_prefix": "KR"}, 422, id="upper-prefix"),
            pytest.param({"name": "A", "key_prefix": "krroot"}, 422, id="reserved-prefix"),
            pytest.param({"name": "A", "key_prefix": "a" * 17}, 422, id="long-prefix"),
            pytest.param({"name": "A", "id": "ten_mine"}, 422, id="mass-assign-id"),
            pytest.param({"name": "!!!"}, 422, id="no-slug-derivable"),
        ],
    )
    async def test_bad_input_changes_nothing(self, api, body, status):
        response = await api.client.post("/v1/tenants", json=body, headers=api.auth())
        assert status == response.status_code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        listed = (await api.client.get("/v1/tenants", headers=api.auth())).json()
        assert [] == listed["items"]

    @pytest.mark.parametrize(
        "name",
        ["Robert'); DROP TABLE tenants;--", "Zoë & Søn 株式会社 🚀", "<script>alert(1)</script>"],
    )
    async def test_hostile_names_round_trip(self, api, name):
        tenant = await api.tenant(name, slug="hostile")
        got = await api.client.get(f"/v1/tenants/{tenant['id']}", headers=api.auth())
        assert name == got.json()["name"]

    async def test_duplicate_slug_is_409(self, api):
        await api.tenant("Acme")
        response = await api.client.post("/v1/tenants", json={"name": "Acme"}, headers=api.auth())
        assert (409, "tenant.duplicate_slug") == (response.status_code, response.json()["code"])

    @pytest.mark.parametrize(
        ("params", "status"),
        [({"limit": 0}, 422), ({"limit": 101}, 422), ({"cursor": "garbage"}, 422)],
    )
    async def test_bad_page_arguments(self, api, params, status):
        response = await api.client.get("/v1/tenants", params=params, headers=api.auth())
        assert status == response.status_code


class TestTenantScopedCaller:
    async def test_sees_only_its_tenant(self, api):
        mine = await api.tenant("Mine")
        theirs = await api.tenant("Theirs")
        scoped = await api.service_account(mine["id"], ["tenants.read", "tenants.write"])
        listed = (await api.client.get("/v1/tenants", headers=api.auth(scoped))).json()
        assert [mine["id"]] == [t["id"] for t in listed["items"]]
        other = f"/v1/tenants/{theirs['id']}"
        assert 404 == (await api.client.get(other, headers=api.auth(scoped))).status_code
        assert (
            404
            == (
                await api.client.patch(other, json={"name": "x"}, headers=api.auth(scoped))
            ).status_code
        )

    async def test_cannot_create_or_delete_tenants(self, api):
        mine = await api.tenant("Mine")
        scoped = await api.service_account(mine["id"], ["tenants.read", "tenants.write"])
        created = await api.client.post("/v1/tenants", json={"name": "X"}, headers=api.auth(scoped))
        assert 403 == created.status_code
        deleted = await api.client.delete(f"/v1/tenants/{mine['id']}", headers=api.auth(scoped))
        assert 403 == deleted.status_code
