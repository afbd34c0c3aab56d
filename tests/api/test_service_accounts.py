import pytest

pytestmark = pytest.mark.anyio


class TestServiceAccounts:
    async def test_platform_account_lifecycle(self, api):
        created = await api.client.post(
            "/v1/service-accounts",
            json={"name": "gateway", "permissions": ["keys.verify", "tenants.read"]},
            headers=api.auth(),
        )
        assert 201 == created.status_code
        body = created.json()
        account, root_key = body["service_account"], body["root_key"]
        assert (None, ["keys.verify", "tenants.read"]) == (
            account["tenant_id"],
            account["permissions"],
        )
        assert root_key.startswith("krroot_")
        path = f"/v1/service-accounts/{account['id']}"
        assert account == (await api.client.get(path, headers=api.auth())).json()
        added = await api.client.post(f"{path}/root-keys", headers=api.auth())
        assert 201 == added.status_code
        second = added.json()["secret"]
        assert 200 == (await api.client.get("/v1/tenants", headers=api.auth(second))).status_code
        listed = (await api.client.get(f"{path}/root-keys", headers=api.auth())).json()["items"]
        assert 2 == len(listed)
        assert all(second not in str(item) and root_key not in str(item) for item in listed)
        revoked = await api.client.delete(
            f"{path}/root-keys/{added.json()['root_key']['id']}", headers=api.auth()
        )
        assert 204 == revoked.status_code
        assert 401 == (await api.client.get("/v1/tenants", headers=api.auth(second))).status_code
        assert 200 == (await api.client.get("/v1/tenants", headers=api.auth(root_key))).status_code

    async def test_bootstrap_cannot_exercise_reveal_but_may_grant_it(self, api):
        tenant = await api.tenant()
        created = await api.client.post(
            f"/v1/tenants/{tenant['id']}/service-accounts",
            json={"name": "vault reader", "permissions": ["vault.reveal"]},
            headers=api.auth(),
        )
        assert 201 == created.status_code

    async def test_nobody_grants_more_than_they_hold(self, api):
        tenant = await api.tenant()
        admin = await api.service_account(
            tenant["id"], ["service_accounts.write", "keys.read", "keys.write"]
        )
        for permissions in (["keys.verify"], ["vault.reveal"], ["keys.reveal"]):
            response = await api.client.post(
                f"/v1/tenants/{tenant['id']}/service-accounts",
                json={"name": "x", "permissions": permissions},
                headers=api.auth(admin),
            )
            assert (403, "auth.forbidden") == (response.status_code, response.json()["code"])
        allowed = await api.client.post(
            f"/v1/tenants/{tenant['id']}/service-accounts",
            json={"name": "reader", "permissions": ["keys.read"]},
            headers=api.auth(admin),
        )
        assert 201 == allowed.status_code

    async def test_platform_only_permission_for_a_tenant_account_is_422(self, api):
        tenant = await api.tenant()
        response = await api.client.post(
            f"/v1/tenants/{tenant['id']}/service-accounts",
            json={"name": "x", "permissions": ["impersonate"]},
            headers=api.auth(),
        )
        assert 422 == response.status_code

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "x", "permissions": ["keys.everything"]},
            {"name": "x", "permissions": "keys.read"},
            {"name": "", "permissions": []},
            {"name": "x"},
            {"name": "x", "permissions": [], "tenant_id": "ten_x"},
        ],
    )
    async def test_bad_bodies_are_422(self, api, body):
        response = await api.client.post("/v1/service-accounts", json=body, headers=api.auth())
        assert 422 == response.status_code

    async def test_tenant_account_cannot_reach_other_tenants_or_the_platform(self, api):
        mine = await api.tenant("Mine")
        theirs = await api.tenant("Theirs")
        admin = await api.service_account(mine["id"], ["service_accounts.write", "keys.read"])
        h = api.auth(admin)
        assert (
            404
            == (
                await api.client.get(f"/v1/tenants/{theirs['id']}/service-accounts", headers=h)
            ).status_code
        )
        assert (
            404
            == (
                await api.client.post(
                    f"/v1/tenants/{theirs['id']}/service-accounts",
                    json={"name": "x", "permissions": []},
                    headers=h,
                )
            ).status_code
        )
        assert 403 == (await api.client.get("/v1/service-accounts", headers=h)).status_code
        assert (
            403
            == (
                await api.client.post(
                    "/v1/service-accounts", json={"name": "x", "permissions": []}, headers=h
                )
            ).status_code
        )

    async def test_unknown_account_and_root_key_are_404(self, api):
        assert (
            404
            == (
                await api.client.get("/v1/service-accounts/sa_nope", headers=api.auth())
            ).status_code
        )
        assert (
            404
            == (
                await api.client.delete(
                    "/v1/service-accounts/sa_nope/root-keys/rk_nope", headers=api.auth()
                )
            ).status_code
        )
