import pytest

pytestmark = pytest.mark.anyio


def _permissions(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/permissions"


def _roles(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/roles"


async def _create(api, path, body, *, key=None):
    response = await api.client.post(path, json=body, headers=api.auth(key))
    assert 201 == response.status_code, response.text
    return response.json()


async def _verify(api, secret, permissions):
    response = await api.client.post(
        "/v1/verify", json={"key": secret, "permissions": permissions}, headers=api.auth()
    )
    assert 200 == response.status_code, response.text
    return response.json()["code"]


HOSTILE_PERMISSION_BODIES = [
    pytest.param({}, id="no-slug"),
    pytest.param({"slug": ""}, id="empty"),
    pytest.param({"slug": "Chat.Write"}, id="upper-case"),
    pytest.param({"slug": "chat write"}, id="space"),
    pytest.param({"slug": " chat.write"}, id="leading-space"),
    pytest.param({"slug": "chat..write"}, id="empty-segment"),
    pytest.param({"slug": "*.chat"}, id="wildcard-first"),
    pytest.param({"slug": "chat*"}, id="wildcard-in-segment"),
    pytest.param({"slug": "OR"}, id="keyword"),
    pytest.param({"slug": "chat\u0000write"}, id="nul"),
    pytest.param({"slug": "'; DROP TABLE permissions;--"}, id="sql"),
    pytest.param({"slug": "a" * 256}, id="too-long"),
    pytest.param({"slug": "a" * 100_000}, id="huge"),
    pytest.param({"slug": 7}, id="number"),
    pytest.param({"slug": ["chat.write"]}, id="list"),
    pytest.param({"slug": None}, id="null"),
    pytest.param({"slug": "a", "description": "d" * 1025}, id="long-description"),
    pytest.param({"slug": "a", "description": 1}, id="description-number"),
    pytest.param({"slug": "a", "tenant_id": "ten_other"}, id="mass-assign-tenant"),
    pytest.param({"slug": "a", "id": "perm_mine"}, id="mass-assign-id"),
]

HOSTILE_ROLE_BODIES = [
    pytest.param({}, id="no-name"),
    pytest.param({"name": ""}, id="empty-name"),
    pytest.param({"name": "   "}, id="blank-name"),
    pytest.param({"name": "r" * 256}, id="long-name"),
    pytest.param({"name": "a\nb"}, id="control-character"),
    pytest.param({"name": 1}, id="name-number"),
    pytest.param({"name": "r", "permissions": "chat.write"}, id="permissions-string"),
    pytest.param({"name": "r", "permissions": ["ok", "Bad"]}, id="bad-permission"),
    pytest.param({"name": "r", "permissions": [1]}, id="permission-number"),
    pytest.param({"name": "r", "permissions": [f"p{i}" for i in range(1001)]}, id="too-many"),
    pytest.param({"name": "r", "permissions": None}, id="permissions-null"),
    pytest.param({"name": "r", "description": "d" * 1025}, id="long-description"),
    pytest.param({"name": "r", "version": 9}, id="mass-assign-version"),
]


class TestPermissions:
    async def test_create_get_list_delete(self, api, clock):
        tenant = await api.tenant()
        path = _permissions(tenant["id"])

        created = await _create(api, path, {"slug": "chat.write", "description": "send"})
        clock.advance(0.01)
        wildcard = await _create(api, path, {"slug": "documents.*"})

        assert {"id", "tenant_id", "slug", "description", "created_at"} == set(created)
        assert (tenant["id"], "chat.write", "send") == (
            created["tenant_id"],
            created["slug"],
            created["description"],
        )
        assert created["id"].startswith("perm_")
        got = await api.client.get(f"{path}/{created['id']}", headers=api.auth())
        assert (200, created) == (got.status_code, got.json())
        listed = await api.client.get(path, headers=api.auth())
        assert {"items": [created, wildcard], "next_cursor": None} == listed.json()
        deleted = await api.client.delete(f"{path}/{created['id']}", headers=api.auth())
        assert (204, b"") == (deleted.status_code, deleted.content)
        gone = await api.client.get(f"{path}/{created['id']}", headers=api.auth())
        assert (404, "permission.not_found") == (gone.status_code, gone.json()["code"])
        again = await api.client.delete(f"{path}/{created['id']}", headers=api.auth())
        assert 404 == again.status_code

    async def test_duplicate_slug_is_409(self, api):
        tenant = await api.tenant()
        await _create(api, _permissions(tenant["id"]), {"slug": "a"})

        response = await api.client.post(
            _permissions(tenant["id"]), json={"slug": "a"}, headers=api.auth()
        )

        assert (409, "permission.duplicate") == (response.status_code, response.json()["code"])
        assert response.headers["content-type"].startswith("application/problem+json")

    @pytest.mark.parametrize("body", HOSTILE_PERMISSION_BODIES)
    async def test_hostile_input_is_422_and_writes_nothing(self, api, body):
        tenant = await api.tenant()
        path = _permissions(tenant["id"])

        response = await api.client.post(path, json=body, headers=api.auth())

        assert 422 == response.status_code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [] == (await api.client.get(path, headers=api.auth())).json()["items"]

    async def test_a_body_that_is_not_an_object_is_422(self, api):
        tenant = await api.tenant()
        response = await api.client.post(
            _permissions(tenant["id"]), json=["chat.write"], headers=api.auth()
        )
        assert 422 == response.status_code

    async def test_pages_with_a_cursor(self, api, clock):
        tenant = await api.tenant()
        path = _permissions(tenant["id"])
        made = []
        for slug in ("a", "b", "c"):
            made.append((await _create(api, path, {"slug": slug}))["id"])
            clock.advance(0.01)

        first = (await api.client.get(path, params={"limit": 2}, headers=api.auth())).json()
        rest = (
            await api.client.get(
                path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=api.auth()
            )
        ).json()

        assert made == [p["id"] for p in first["items"] + rest["items"]]
        assert rest["next_cursor"] is None

    @pytest.mark.parametrize(
        "params",
        [
            pytest.param({"limit": 0}, id="limit-zero"),
            pytest.param({"limit": 101}, id="limit-too-big"),
            pytest.param({"limit": "x"}, id="limit-text"),
            pytest.param({"cursor": "key_0000000000000000000000"}, id="foreign-cursor"),
            pytest.param({"cursor": "c" * 65}, id="long-cursor"),
        ],
    )
    async def test_bad_page_arguments_are_422(self, api, params):
        tenant = await api.tenant()
        for path in (_permissions(tenant["id"]), _roles(tenant["id"])):
            response = await api.client.get(path, params=params, headers=api.auth())
            assert 422 == response.status_code, (path, response.text)

    async def test_an_over_long_id_is_422(self, api):
        tenant = await api.tenant()
        for path in (_permissions(tenant["id"]), _roles(tenant["id"])):
            response = await api.client.get(f"{path}/{'x' * 65}", headers=api.auth())
            assert 422 == response.status_code

    async def test_delete_takes_it_off_roles_and_keys(self, api):
        tenant = await api.tenant()
        role = await _create(
            api, _roles(tenant["id"]), {"name": "r", "permissions": ["chat.write", "chat.read"]}
        )
        key, secret = await api.key(tenant["id"], permissions=["chat.write"], roles=["r"])
        assert "VALID" == await _verify(api, secret, "chat.write")
        listed = await api.client.get(_permissions(tenant["id"]), headers=api.auth())
        [slug] = [p for p in listed.json()["items"] if p["slug"] == "chat.write"]

        await api.client.delete(f"{_permissions(tenant['id'])}/{slug['id']}", headers=api.auth())

        got_role = await api.client.get(f"{_roles(tenant['id'])}/{role['id']}", headers=api.auth())
        got_key = await api.client.get(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}", headers=api.auth()
        )
        assert ["chat.read"] == got_role.json()["permissions"]
        assert ([], ["r"]) == (got_key.json()["permissions"], got_key.json()["roles"])
        assert "INSUFFICIENT_PERMISSIONS" == await _verify(api, secret, "chat.write")
        assert "VALID" == await _verify(api, secret, "chat.read")


class TestRoles:
    async def test_create_get_list_update_delete(self, api, clock):
        tenant = await api.tenant()
        path = _roles(tenant["id"])

        created = await _create(
            api,
            path,
            {"name": "support", "description": "help desk", "permissions": ["tickets.*", "chat"]},
        )

        assert {
            "id",
            "tenant_id",
            "name",
            "description",
            "permissions",
            "created_at",
            "updated_at",
        } == set(created)
        assert ("support", "help desk", ["tickets.*", "chat"]) == (
            created["name"],
            created["description"],
            created["permissions"],
        )
        assert created["id"].startswith("role_")
        slugs = await api.client.get(_permissions(tenant["id"]), headers=api.auth())
        assert ["chat", "tickets.*"] == sorted(p["slug"] for p in slugs.json()["items"])
        role_path = f"{path}/{created['id']}"
        assert created == (await api.client.get(role_path, headers=api.auth())).json()
        listed = await api.client.get(path, headers=api.auth())
        assert {"items": [created], "next_cursor": None} == listed.json()

        clock.advance(5)
        patched = await api.client.patch(
            role_path, json={"description": None, "permissions": ["chat"]}, headers=api.auth()
        )
        assert 200 == patched.status_code, patched.text
        body = patched.json()
        assert ("support", None, ["chat"]) == (
            body["name"],
            body["description"],
            body["permissions"],
        )
        assert body["updated_at"] > created["updated_at"]
        unchanged = await api.client.patch(role_path, json={}, headers=api.auth())
        assert body["permissions"] == unchanged.json()["permissions"]

        deleted = await api.client.delete(role_path, headers=api.auth())
        assert (204, b"") == (deleted.status_code, deleted.content)
        gone = await api.client.get(role_path, headers=api.auth())
        assert (404, "role.not_found") == (gone.status_code, gone.json()["code"])

    async def test_duplicate_name_is_409_on_create_and_rename(self, api):
        tenant = await api.tenant()
        await _create(api, _roles(tenant["id"]), {"name": "admin"})
        other = await _create(api, _roles(tenant["id"]), {"name": "reader"})

        created = await api.client.post(
            _roles(tenant["id"]), json={"name": "admin"}, headers=api.auth()
        )
        renamed = await api.client.patch(
            f"{_roles(tenant['id'])}/{other['id']}", json={"name": "admin"}, headers=api.auth()
        )

        assert (409, "role.duplicate") == (created.status_code, created.json()["code"])
        assert (409, "role.duplicate") == (renamed.status_code, renamed.json()["code"])

    @pytest.mark.parametrize("body", HOSTILE_ROLE_BODIES)
    async def test_hostile_create_is_422_and_writes_nothing(self, api, body):
        tenant = await api.tenant()

        response = await api.client.post(_roles(tenant["id"]), json=body, headers=api.auth())

        assert 422 == response.status_code, response.text
        assert (
            [] == (await api.client.get(_roles(tenant["id"]), headers=api.auth())).json()["items"]
        )
        assert (
            []
            == (await api.client.get(_permissions(tenant["id"]), headers=api.auth())).json()[
                "items"
            ]
        )

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"name": None}, id="name-null"),
            pytest.param({"permissions": None}, id="permissions-null"),
            pytest.param({"name": ""}, id="empty-name"),
            pytest.param({"name": "r" * 256}, id="long-name"),
            pytest.param({"permissions": ["Bad"]}, id="bad-permission"),
            pytest.param({"permissions": "p"}, id="permissions-string"),
            pytest.param({"description": ["d"]}, id="description-list"),
            pytest.param({"tenant_id": "ten_other"}, id="unknown-field"),
        ],
    )
    async def test_hostile_update_is_422_and_changes_nothing(self, api, body):
        tenant = await api.tenant()
        role = await _create(api, _roles(tenant["id"]), {"name": "r", "permissions": ["p"]})
        role_path = f"{_roles(tenant['id'])}/{role['id']}"

        response = await api.client.patch(role_path, json=body, headers=api.auth())

        assert 422 == response.status_code, response.text
        assert role == (await api.client.get(role_path, headers=api.auth())).json()

    async def test_a_role_change_reaches_verify_at_once(self, api):
        tenant = await api.tenant()
        role = await _create(
            api, _roles(tenant["id"]), {"name": "writer", "permissions": ["chat.write"]}
        )
        role_path = f"{_roles(tenant['id'])}/{role['id']}"
        key, secret = await api.key(tenant["id"], roles=["writer"])
        assert "VALID" == await _verify(api, secret, "chat.write")

        await api.client.patch(role_path, json={"permissions": ["docs.*"]}, headers=api.auth())
        assert "INSUFFICIENT_PERMISSIONS" == await _verify(api, secret, "chat.write")
        assert "VALID" == await _verify(api, secret, "docs.read AND docs.*")

        await api.client.patch(role_path, json={"name": "editor"}, headers=api.auth())
        key_path = f"/v1/tenants/{tenant['id']}/keys/{key['id']}"
        assert ["editor"] == (await api.client.get(key_path, headers=api.auth())).json()["roles"]
        assert "VALID" == await _verify(api, secret, "docs.read")

        await api.client.delete(role_path, headers=api.auth())
        assert [] == (await api.client.get(key_path, headers=api.auth())).json()["roles"]
        assert "INSUFFICIENT_PERMISSIONS" == await _verify(api, secret, "docs.read")

    async def test_a_key_may_name_only_existing_roles(self, api):
        tenant = await api.tenant()
        await _create(api, _roles(tenant["id"]), {"name": "known"})

        response = await api.client.post(
            f"/v1/tenants/{tenant['id']}/keys",
            json={"name": "k", "roles": ["known", "ghost"]},
            headers=api.auth(),
        )

        assert 422 == response.status_code
        assert ("roles", ["ghost"]) == (response.json()["field"], response.json()["missing"])


class TestCrossTenant:
    async def test_every_route_answers_404_for_another_tenants_objects(self, api):
        mine = await api.tenant("Mine")
        theirs = await api.tenant("Theirs")
        their_permission = await _create(api, _permissions(theirs["id"]), {"slug": "p"})
        their_role = await _create(api, _roles(theirs["id"]), {"name": "r", "permissions": ["p"]})
        scoped = await api.service_account(mine["id"], ["keys.read", "keys.write"])
        h = api.auth(scoped)
        paths = {
            "permission": (_permissions, their_permission["id"]),
            "role": (_roles, their_role["id"]),
        }
        for collection, object_id in paths.values():
            # Their object under my tenant path: not found in my tenant.
            # My credential on their tenant path: their tenant does not exist for me.
            for tenant_id in (mine["id"], theirs["id"]):
                path = f"{collection(tenant_id)}/{object_id}"
                assert 404 == (await api.client.get(path, headers=h)).status_code
                assert 404 == (await api.client.delete(path, headers=h)).status_code
            their_collection = collection(theirs["id"])
            assert 404 == (await api.client.get(their_collection, headers=h)).status_code
        role_paths = [f"{_roles(t)}/{their_role['id']}" for t in (mine["id"], theirs["id"])]
        for path in role_paths:
            patched = await api.client.patch(path, json={"name": "x"}, headers=h)
            assert 404 == patched.status_code
        created = [
            await api.client.post(_permissions(theirs["id"]), json={"slug": "q"}, headers=h),
            await api.client.post(_roles(theirs["id"]), json={"name": "q"}, headers=h),
        ]
        assert [404, 404] == [r.status_code for r in created]
        assert ["tenant.not_found"] * 2 == [r.json()["code"] for r in created]

        # Nothing of theirs changed, and mine has nothing.
        role = await api.client.get(
            f"{_roles(theirs['id'])}/{their_role['id']}", headers=api.auth()
        )
        assert their_role == role.json()
        slugs = await api.client.get(_permissions(theirs["id"]), headers=api.auth())
        assert ["p"] == [p["slug"] for p in slugs.json()["items"]]
        for collection in (_permissions, _roles):
            assert [] == (await api.client.get(collection(mine["id"]), headers=h)).json()["items"]

    async def test_unknown_tenant_is_404(self, api):
        for path in (_permissions("ten_nope"), _roles("ten_nope")):
            response = await api.client.get(path, headers=api.auth())
            assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])


class TestAuthorization:
    async def test_a_root_key_without_keys_write_may_only_read(self, api):
        tenant = await api.tenant()
        permission = await _create(api, _permissions(tenant["id"]), {"slug": "p"})
        role = await _create(api, _roles(tenant["id"]), {"name": "r"})
        reader = api.auth(await api.service_account(tenant["id"], ["keys.read"]))
        permission_path = f"{_permissions(tenant['id'])}/{permission['id']}"
        role_path = f"{_roles(tenant['id'])}/{role['id']}"

        refused = [
            await api.client.post(_permissions(tenant["id"]), json={"slug": "q"}, headers=reader),
            await api.client.delete(permission_path, headers=reader),
            await api.client.post(_roles(tenant["id"]), json={"name": "q"}, headers=reader),
            await api.client.patch(role_path, json={"name": "q"}, headers=reader),
            await api.client.delete(role_path, headers=reader),
        ]
        allowed = [
            await api.client.get(_permissions(tenant["id"]), headers=reader),
            await api.client.get(permission_path, headers=reader),
            await api.client.get(_roles(tenant["id"]), headers=reader),
            await api.client.get(role_path, headers=reader),
        ]

        assert [403] * 5 == [r.status_code for r in refused]
        assert ["auth.forbidden"] * 5 == [r.json()["code"] for r in refused]
        assert [200] * 4 == [r.status_code for r in allowed]
        assert role == (await api.client.get(role_path, headers=api.auth())).json()

    async def test_a_root_key_without_keys_read_may_not_read(self, api):
        tenant = await api.tenant()
        outsider = api.auth(await api.service_account(tenant["id"], ["usage.read"]))
        for path in (_permissions(tenant["id"]), _roles(tenant["id"])):
            assert 403 == (await api.client.get(path, headers=outsider)).status_code

    async def test_no_credential_is_401(self, api):
        tenant = await api.tenant()
        for path in (_permissions(tenant["id"]), _roles(tenant["id"])):
            assert 401 == (await api.client.get(path)).status_code
            assert 401 == (await api.client.post(path, json={"name": "x"})).status_code
