"""System keys: get-or-create on behalf of a user, hidden from the user (DESIGN.md §2, §5, §11)."""

import logging

import anyio
import pytest

from tests.api.people import add_member, at, audit_rows, create_user, login, signed_in

pytestmark = pytest.mark.anyio


async def member(api, tenant_id, email="ada@example.com", role="member"):
    user = await create_user(api, email, password=None)
    await add_member(api, tenant_id, user["id"], role)
    return user


def path(tenant_id, user_id, name="billing"):
    return f"/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}"


class TestPut:
    async def test_the_first_put_creates_later_ones_return_the_same_key_and_secret(
        self, api, clock
    ):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        first = await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())
        assert 201 == first.status_code
        body = first.json()
        assert ["key", "secret"] == sorted(body)
        key, secret = body["key"], body["secret"]
        assert secret.startswith(tenant["key_prefix"] + "_")
        expected = {
            "tenant_id": tenant["id"],
            "name": "billing",
            "owner_id": ada["id"],
            "system": True,
            "recoverable": True,
            "status": "active",
            "expires_at": None,
            "description": None,
            "created_at": at(clock),
        }
        assert expected == {name: key[name] for name in expected}

        clock.advance(5)
        again = await api.client.put(
            path(tenant["id"], ada["id"]),
            json={"description": "ignored: the key exists"},
            headers=api.auth(),
        )
        assert (200, body) == (again.status_code, again.json())
        verified = (await api.verify(secret)).json()
        assert (True, key["id"], ada["id"]) == (
            verified["valid"],
            verified["key_id"],
            verified["owner_id"],
        )
        assert [key["id"]] == [row.target_id for row in await audit_rows(api, "key.created")]
        assert [key["id"]] == [row.target_id for row in await audit_rows(api, "key.revealed")]

    async def test_a_body_shapes_the_new_key(self, api, clock):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        response = await api.client.put(
            path(tenant["id"], ada["id"], "search"),
            json={
                "description": "search backend",
                "expires_at": at(clock, days=30),
                "meta": {"plan": "pro"},
                "permissions": ["search.read"],
            },
            headers=api.auth(),
        )
        assert 201 == response.status_code
        key = response.json()["key"]
        assert ("search backend", at(clock, days=30), {"plan": "pro"}, ["search.read"]) == (
            key["description"],
            key["expires_at"],
            key["meta"],
            key["permissions"],
        )

    async def test_concurrent_puts_make_one_key_with_one_secret(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        answers = []

        async def put() -> None:
            answers.append(await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth()))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(put)
        assert [200] * 9 + [201] == sorted(a.status_code for a in answers), [
            a.text for a in answers if a.status_code >= 300
        ]
        assert 1 == len({a.json()["secret"] for a in answers})
        assert 1 == len({a.json()["key"]["id"] for a in answers})
        listed = await api.client.get(
            f"/v1/tenants/{tenant['id']}/keys?include_system=true", headers=api.auth()
        )
        assert [answers[0].json()["key"]["id"]] == [k["id"] for k in listed.json()["items"]]

    async def test_an_unknown_user_is_404_and_a_non_member_403(self, api):
        tenant = await api.tenant()
        outsider = await create_user(api, "eve@example.com", password=None)
        unknown = await api.client.put(path(tenant["id"], "usr_nobody"), headers=api.auth())
        assert (404, "user.not_found") == (unknown.status_code, unknown.json()["code"])
        not_member = await api.client.put(path(tenant["id"], outsider["id"]), headers=api.auth())
        assert (403, "member.required") == (not_member.status_code, not_member.json()["code"])
        gone = await api.client.delete(path(tenant["id"], "usr_nobody"), headers=api.auth())
        assert (404, "user.not_found") == (gone.status_code, gone.json()["code"])
        outside = await api.client.delete(path(tenant["id"], outsider["id"]), headers=api.auth())
        assert (403, "member.required") == (outside.status_code, outside.json()["code"])
        no_tenant = await api.client.put(path("ten_nobody", outsider["id"]), headers=api.auth())
        assert 404 == no_tenant.status_code

    async def test_only_holders_of_system_keys_manage_may_call(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        ada = await member(api, tenant["id"])
        _, boss = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        keys_admin = await api.service_account(tenant["id"], ["keys.read", "keys.write"])
        for credential in (keys_admin, boss):
            for method in ("PUT", "DELETE"):
                response = await api.client.request(
                    method, path(tenant["id"], ada["id"]), headers=api.auth(credential)
                )
                assert (403, "auth.forbidden") == (
                    response.status_code,
                    response.json()["code"],
                ), credential
        elsewhere = await api.service_account(other["id"], ["system_keys.manage"])
        foreign = await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth(elsewhere))
        assert 404 == foreign.status_code
        manager = await api.service_account(tenant["id"], ["system_keys.manage"])
        allowed = await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth(manager))
        assert 201 == allowed.status_code

    async def test_a_platform_admin_session_is_not_a_service(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        await create_user(api, "root@example.com", is_platform_admin=True)
        admin = await login(api, "root@example.com")
        response = await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth(admin))
        assert 403 == response.status_code

    @pytest.mark.parametrize(
        "body",
        [
            {"owner_id": "usr_other"},
            {"system": False},
            {"tenant_id": "ten_x"},
            {"recoverable": False},
            {"expires_at": "2020-01-01T00:00:00Z"},
            {"expires_at": "2030-01-01T00:00:00"},
            {"permissions": "chat.write"},
        ],
        ids=["owner", "system", "tenant", "recoverable", "past-expiry", "naive-expiry", "slugs"],
    )
    async def test_bad_bodies_are_422_and_create_nothing(self, api, body):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        response = await api.client.put(
            path(tenant["id"], ada["id"]), json=body, headers=api.auth()
        )
        assert 422 == response.status_code
        listed = await api.client.get(
            f"/v1/tenants/{tenant['id']}/keys?include_system=true", headers=api.auth()
        )
        assert [] == listed.json()["items"]

    async def test_a_name_over_255_characters_is_422(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        response = await api.client.put(
            path(tenant["id"], ada["id"], "n" * 256), headers=api.auth()
        )
        assert 422 == response.status_code


class TestVisibility:
    async def test_hidden_from_the_owner_and_from_default_lists(self, api):
        tenant = await api.tenant()
        ada, ada_token = await signed_in(api, tenant["id"], "member", "ada@example.com")
        _, boss = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        keys = f"/v1/tenants/{tenant['id']}/keys"
        own = (
            await api.client.post(keys, json={"name": "mine"}, headers=api.auth(ada_token))
        ).json()["key"]
        system = (await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())).json()[
            "key"
        ]

        for credential in (ada_token, api.root_key, boss):
            listed = await api.client.get(keys, headers=api.auth(credential))
            assert [own["id"]] == [k["id"] for k in listed.json()["items"]]
        owner_asks = await api.client.get(
            f"{keys}?include_system=true", headers=api.auth(ada_token)
        )
        assert [own["id"]] == [k["id"] for k in owner_asks.json()["items"]]
        for credential in (api.root_key, boss):
            listed = await api.client.get(
                f"{keys}?include_system=true", headers=api.auth(credential)
            )
            # Both keys are made at the same fake-clock instant, so their id order is random.
            assert {own["id"], system["id"]} == {k["id"] for k in listed.json()["items"]}

        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/rotate")):
            response = await api.client.request(
                method, f"{keys}/{system['id']}{suffix}", headers=api.auth(ada_token)
            )
            assert (404, "key.not_found") == (response.status_code, response.json()["code"])
        read = await api.client.get(f"{keys}/{system['id']}", headers=api.auth(boss))
        assert (200, system) == (read.status_code, read.json())

    async def test_admins_cannot_delete_or_rotate_it_on_the_key_routes(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        system = (await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())).json()[
            "key"
        ]
        key_path = f"/v1/tenants/{tenant['id']}/keys/{system['id']}"
        for response in (
            await api.client.delete(key_path, headers=api.auth()),
            await api.client.post(f"{key_path}/rotate", headers=api.auth()),
        ):
            assert (409, "key.system") == (response.status_code, response.json()["code"])
        assert 200 == (await api.client.get(key_path, headers=api.auth())).status_code


class TestDelete:
    async def test_delete_then_404_and_the_secret_stops_working(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        first = (await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())).json()
        assert True is (await api.verify(first["secret"])).json()["valid"]
        deleted = await api.client.delete(path(tenant["id"], ada["id"]), headers=api.auth())
        assert 204 == deleted.status_code
        again = await api.client.delete(path(tenant["id"], ada["id"]), headers=api.auth())
        assert (404, "key.not_found") == (again.status_code, again.json()["code"])
        assert "NOT_FOUND" == (await api.verify(first["secret"])).json()["code"]
        fresh = await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())
        assert 201 == fresh.status_code
        assert first["key"]["id"] != fresh.json()["key"]["id"]
        assert first["secret"] != fresh.json()["secret"]

    async def test_other_names_and_users_are_separate(self, api):
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        bob = await member(api, tenant["id"], email="bob@example.com")
        ids = set()
        for user, name in ((ada, "billing"), (ada, "search"), (bob, "billing")):
            response = await api.client.put(
                path(tenant["id"], user["id"], name), headers=api.auth()
            )
            assert 201 == response.status_code
            ids.add(response.json()["key"]["id"])
        assert 3 == len(ids)
        await api.client.delete(path(tenant["id"], ada["id"]), headers=api.auth())
        kept = await api.client.put(path(tenant["id"], bob["id"]), headers=api.auth())
        assert 200 == kept.status_code


class TestSecrecy:
    async def test_the_secret_never_reaches_logs_or_other_answers(self, api, caplog):
        caplog.set_level(logging.DEBUG)
        tenant = await api.tenant()
        ada = await member(api, tenant["id"])
        secret = (await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())).json()[
            "secret"
        ]
        again = (await api.client.put(path(tenant["id"], ada["id"]), headers=api.auth())).json()
        assert secret == again["secret"]
        key_id = again["key"]["id"]
        answers = [
            await api.client.get(
                f"/v1/tenants/{tenant['id']}/keys?include_system=true", headers=api.auth()
            ),
            await api.client.get(f"/v1/tenants/{tenant['id']}/keys/{key_id}", headers=api.auth()),
            await api.client.delete(
                f"/v1/tenants/{tenant['id']}/keys/{key_id}", headers=api.auth()
            ),
        ]
        await api.verify(secret)
        await api.client.delete(path(tenant["id"], ada["id"]), headers=api.auth())
        await api.runtime.writes.flush()
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        assert secret not in logged
        for response in answers:
            assert secret not in response.text
