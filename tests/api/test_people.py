"""Users, members and who sees which keys, over HTTP (DESIGN.md §2, §6, §11)."""

import pytest

from tests.api.people import PASSWORD, add_member, at, create_user, signed_in

pytestmark = pytest.mark.anyio


def member_of(user, role, clock, **times):
    return {
        "user_id": user["id"],
        "email": user["email"],
        "name": user["name"],
        "role": role,
        "created_at": times.get("created_at", at(clock)),
        "updated_at": times.get("updated_at", at(clock)),
    }


class TestUsers:
    async def test_create_read_and_list(self, api, clock):
        tenant = await api.tenant()
        created = await api.client.post(
            "/v1/admin/users",
            json={"email": " Ada@Example.COM", "name": "Ada", "password": PASSWORD},
            headers=api.auth(),
        )
        assert 201 == created.status_code
        ada = created.json()
        assert ada["id"].startswith("usr_")
        assert {
            "id": ada["id"],
            "email": "ada@example.com",
            "name": "Ada",
            "is_platform_admin": False,
            "has_password": True,
            "created_at": at(clock),
            "memberships": [],
        } == ada
        assert PASSWORD not in created.text
        clock.advance(0.01)
        bob = await create_user(api, "bob@example.com", name="Bob", password=None)
        assert (False, []) == (bob["has_password"], bob["memberships"])
        await add_member(api, tenant["id"], ada["id"], "admin")
        ada_with = {**ada, "memberships": [{"tenant_id": tenant["id"], "role": "admin"}]}

        read = await api.client.get(f"/v1/admin/users/{ada['id']}", headers=api.auth())
        assert ada_with == read.json()
        listed = await api.client.get("/v1/admin/users", headers=api.auth())
        assert {"items": [ada_with, bob], "next_cursor": None} == listed.json()
        first = (await api.client.get("/v1/admin/users?limit=1", headers=api.auth())).json()
        assert ([ada_with], ada["id"]) == (first["items"], first["next_cursor"])
        second = await api.client.get(
            f"/v1/admin/users?limit=1&cursor={first['next_cursor']}", headers=api.auth()
        )
        assert {"items": [bob], "next_cursor": None} == second.json()

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("tenant_id={tenant}", ["ada", "carol"]),
            ("tenant_id={tenant}&role=member", ["carol"]),
            ("role=admin", ["ada"]),
            ("tenant_id={other}", []),
        ],
        ids=["tenant", "tenant-and-role", "role", "empty-tenant"],
    )
    async def test_list_filters_by_tenant_and_role(self, api, clock, query, expected):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        users = {}
        for name in ("ada", "bob", "carol"):
            users[name] = await create_user(api, f"{name}@example.com", password=None)
            clock.advance(0.01)
        await add_member(api, tenant["id"], users["ada"]["id"], "admin")
        await add_member(api, tenant["id"], users["carol"]["id"], "member")
        path = "/v1/admin/users?" + query.format(tenant=tenant["id"], other=other["id"])
        listed = (await api.client.get(path, headers=api.auth())).json()["items"]
        assert [users[name]["id"] for name in expected] == [u["id"] for u in listed]

    async def test_an_email_is_taken_once(self, api):
        await create_user(api, "ada@example.com", password=None)
        again = await api.client.post(
            "/v1/admin/users",
            json={"email": "ADA@example.com", "name": "Ada again"},
            headers=api.auth(),
        )
        assert (409, "user.duplicate_email") == (again.status_code, again.json()["code"])

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "ada@example.com", "name": "Ada", "password": "too short"},
            {"email": "not-an-email", "name": "Ada"},
            {"email": "ada@example.com", "name": ""},
            {"email": "ada@example.com", "name": "Ada", "is_platform_admin": "yes"},
            {"email": "ada@example.com", "name": "Ada", "role": "admin"},
            {"email": "ada@example.com", "name": "Ada", "tenant_id": "ten_x"},
            {"email": "ada@example.com", "name": "Ada", "has_password": True},
        ],
        ids=[
            "short-password",
            "bad-email",
            "empty-name",
            "admin-flag-not-bool",
            "mass-assign-role",
            "mass-assign-tenant",
            "mass-assign-read-only",
        ],
    )
    async def test_bad_user_bodies_are_422(self, api, body):
        response = await api.client.post("/v1/admin/users", json=body, headers=api.auth())
        assert 422 == response.status_code
        assert "too short" not in response.text
        listed = (await api.client.get("/v1/admin/users", headers=api.auth())).json()
        assert [] == listed["items"]

    async def test_an_unknown_user_is_404(self, api):
        response = await api.client.get("/v1/admin/users/usr_nobody", headers=api.auth())
        assert (404, "user.not_found") == (response.status_code, response.json()["code"])

    async def test_tenant_callers_cannot_manage_users(self, api):
        tenant = await api.tenant()
        _, tenant_admin = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        account = await api.service_account(tenant["id"], ["members.read", "members.write"])
        body = {"email": "eve@example.com", "name": "Eve", "is_platform_admin": True}
        for credential in (tenant_admin, account):
            created = await api.client.post(
                "/v1/admin/users", json=body, headers=api.auth(credential)
            )
            assert (403, "auth.forbidden") == (created.status_code, created.json()["code"])
            listed = await api.client.get("/v1/admin/users", headers=api.auth(credential))
            assert 403 == listed.status_code

    async def test_making_a_platform_admin_needs_every_platform_admin_permission(self, api):
        writer = await api.service_account(None, ["users.write", "users.read"])
        body = {"email": "eve@example.com", "name": "Eve"}
        escalated = await api.client.post(
            "/v1/admin/users", json={**body, "is_platform_admin": True}, headers=api.auth(writer)
        )
        assert 403 == escalated.status_code
        plain = await api.client.post("/v1/admin/users", json=body, headers=api.auth(writer))
        assert (201, False) == (plain.status_code, plain.json()["is_platform_admin"])
        root = await api.client.post(
            "/v1/admin/users",
            json={"email": "root@example.com", "name": "Root", "is_platform_admin": True},
            headers=api.auth(),
        )
        assert (201, True) == (root.status_code, root.json()["is_platform_admin"])


class TestMembers:
    async def test_add_read_list_change_remove(self, api, clock):
        tenant = await api.tenant()
        members = f"/v1/tenants/{tenant['id']}/members"
        ada = await create_user(api, "ada@example.com", password=None)
        clock.advance(0.01)
        bob = await create_user(api, "bob@example.com", name="Bob", password=None)
        added = await api.client.post(
            members, json={"user_id": ada["id"], "role": "admin"}, headers=api.auth()
        )
        assert (201, member_of(ada, "admin", clock)) == (added.status_code, added.json())
        bob_added = at(clock)
        await add_member(api, tenant["id"], bob["id"], "member")
        assert (
            member_of(ada, "admin", clock)
            == (await api.client.get(f"{members}/{ada['id']}", headers=api.auth())).json()
        )
        listed = (await api.client.get(members, headers=api.auth())).json()
        assert {
            "items": [member_of(ada, "admin", clock), member_of(bob, "member", clock)],
            "next_cursor": None,
        } == listed
        only_members = (await api.client.get(f"{members}?role=member", headers=api.auth())).json()
        assert [bob["id"]] == [m["user_id"] for m in only_members["items"]]

        clock.advance(5)
        promoted = await api.client.patch(
            f"{members}/{bob['id']}", json={"role": "admin"}, headers=api.auth()
        )
        assert (200, member_of(bob, "admin", clock, created_at=bob_added)) == (
            promoted.status_code,
            promoted.json(),
        )
        removed = await api.client.delete(f"{members}/{ada['id']}", headers=api.auth())
        assert 204 == removed.status_code
        gone = await api.client.get(f"{members}/{ada['id']}", headers=api.auth())
        assert (404, "member.not_found") == (gone.status_code, gone.json()["code"])
        user = (await api.client.get(f"/v1/admin/users/{ada['id']}", headers=api.auth())).json()
        assert [] == user["memberships"]

    async def test_the_last_admin_cannot_be_removed_or_demoted(self, api):
        tenant = await api.tenant()
        members = f"/v1/tenants/{tenant['id']}/members"
        ada = await create_user(api, "ada@example.com", password=None)
        bob = await create_user(api, "bob@example.com", password=None)
        await add_member(api, tenant["id"], ada["id"], "admin")
        await add_member(api, tenant["id"], bob["id"], "member")
        demoted = await api.client.patch(
            f"{members}/{ada['id']}", json={"role": "member"}, headers=api.auth()
        )
        removed = await api.client.delete(f"{members}/{ada['id']}", headers=api.auth())
        for response in (demoted, removed):
            assert (409, "member.last_admin") == (response.status_code, response.json()["code"])
        still = (await api.client.get(f"{members}/{ada['id']}", headers=api.auth())).json()
        assert "admin" == still["role"]
        # With a second admin, the first may step down.
        await api.client.patch(f"{members}/{bob['id']}", json={"role": "admin"}, headers=api.auth())
        stepped_down = await api.client.patch(
            f"{members}/{ada['id']}", json={"role": "member"}, headers=api.auth()
        )
        assert (200, "member") == (stepped_down.status_code, stepped_down.json()["role"])
        last = await api.client.delete(f"{members}/{bob['id']}", headers=api.auth())
        assert 409 == last.status_code

    async def test_unknown_users_and_repeats(self, api):
        tenant = await api.tenant()
        members = f"/v1/tenants/{tenant['id']}/members"
        unknown = await api.client.post(
            members, json={"user_id": "usr_nobody", "role": "member"}, headers=api.auth()
        )
        assert (404, "user.not_found") == (unknown.status_code, unknown.json()["code"])
        ada = await create_user(api, "ada@example.com", password=None)
        await add_member(api, tenant["id"], ada["id"], "member")
        again = await api.client.post(
            members, json={"user_id": ada["id"], "role": "admin"}, headers=api.auth()
        )
        assert (409, "member.exists") == (again.status_code, again.json()["code"])
        for method in ("GET", "PATCH", "DELETE"):
            response = await api.client.request(
                method,
                f"{members}/usr_nobody",
                json={"role": "admin"} if method == "PATCH" else None,
                headers=api.auth(),
            )
            assert (404, "member.not_found") == (response.status_code, response.json()["code"])
        other_tenant = await api.client.get("/v1/tenants/ten_nobody/members", headers=api.auth())
        assert 404 == other_tenant.status_code

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("POST", "", {"user_id": "{user}", "role": "owner"}),
            ("POST", "", {"user_id": "{user}", "role": "member", "is_platform_admin": True}),
            ("POST", "", {"user_id": "{user}", "role": "member", "tenant_id": "ten_x"}),
            ("PATCH", "/{user}", {"role": "admin", "tenant_id": "ten_x"}),
            ("PATCH", "/{user}", {"role": "admin", "is_platform_admin": True}),
            ("PATCH", "/{user}", {"role": "superuser"}),
            ("PATCH", "/{user}", {"user_id": "usr_other"}),
        ],
        ids=[
            "unknown-role",
            "add-platform-admin",
            "add-tenant",
            "patch-tenant",
            "patch-platform-admin",
            "patch-unknown-role",
            "patch-user-id",
        ],
    )
    async def test_mass_assignment_is_422(self, api, method, suffix, body):
        tenant = await api.tenant()
        ada = await create_user(api, "ada@example.com", password=None)
        if method == "PATCH":
            await add_member(api, tenant["id"], ada["id"], "member")
        filled = {k: v.format(user=ada["id"]) if isinstance(v, str) else v for k, v in body.items()}
        path = f"/v1/tenants/{tenant['id']}/members" + suffix.format(user=ada["id"])
        response = await api.client.request(method, path, json=filled, headers=api.auth())
        assert 422 == response.status_code
        user = (await api.client.get(f"/v1/admin/users/{ada['id']}", headers=api.auth())).json()
        assert False is user["is_platform_admin"]
        expected = [{"tenant_id": tenant["id"], "role": "member"}] if method == "PATCH" else []
        assert expected == user["memberships"]

    async def test_a_tenant_admin_manages_its_own_tenant_only(self, api, clock):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        _, token = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        ada = await create_user(api, "ada@example.com", password=None)
        added = await api.client.post(
            f"/v1/tenants/{tenant['id']}/members",
            json={"user_id": ada["id"], "role": "member"},
            headers=api.auth(token),
        )
        assert 201 == added.status_code
        for path in (f"/v1/tenants/{other['id']}/members", f"/v1/tenants/{other['id']}/users"):
            response = await api.client.get(path, headers=api.auth(token))
            assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])
        assert (
            403
            == (
                await api.client.get(f"/v1/admin/users/{ada['id']}", headers=api.auth(token))
            ).status_code
        )

    async def test_a_member_cannot_reach_people_endpoints(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        ada, token = await signed_in(api, tenant["id"], "member", "ada@example.com")
        base = f"/v1/tenants/{tenant['id']}"
        for method, path, body in (
            ("GET", f"{base}/members", None),
            ("GET", f"{base}/members/{ada['id']}", None),
            ("POST", f"{base}/members", {"user_id": ada["id"], "role": "admin"}),
            ("PATCH", f"{base}/members/{ada['id']}", {"role": "admin"}),
            ("DELETE", f"{base}/members/{ada['id']}", None),
            ("GET", f"{base}/users", None),
            ("GET", f"{base}/invitations", None),
            ("POST", f"{base}/invitations", {"email": "eve@example.com", "role": "admin"}),
            ("GET", "/v1/admin/users", None),
        ):
            response = await api.client.request(method, path, json=body, headers=api.auth(token))
            assert 403 == response.status_code, (method, path)
        response = await api.client.get(
            f"/v1/tenants/{other['id']}/members", headers=api.auth(token)
        )
        assert 404 == response.status_code
        me = (await api.client.get("/v1/users/me", headers=api.auth(token))).json()
        assert [{"tenant_id": tenant["id"], "role": "member"}] == me["memberships"]


class TestTenantUsers:
    async def test_members_and_pending_invitations(self, api, clock):
        tenant = await api.tenant()
        ada = await create_user(api, "ada@example.com", password=None)
        await add_member(api, tenant["id"], ada["id"], "admin")
        invitations = f"/v1/tenants/{tenant['id']}/invitations"
        pending = (
            await api.client.post(
                invitations, json={"email": "eve@example.com", "role": "member"}, headers=api.auth()
            )
        ).json()["invitation"]
        revoked = (
            await api.client.post(
                invitations, json={"email": "mal@example.com", "role": "admin"}, headers=api.auth()
            )
        ).json()["invitation"]
        await api.client.post(f"{invitations}/{revoked['id']}/revoke", headers=api.auth())
        view = await api.client.get(f"/v1/tenants/{tenant['id']}/users", headers=api.auth())
        assert 200 == view.status_code
        assert {
            "items": [member_of(ada, "admin", clock)],
            "next_cursor": None,
            "invitations": [pending],
        } == view.json()
        by_role = await api.client.get(
            f"/v1/tenants/{tenant['id']}/users?role=member", headers=api.auth()
        )
        assert ([], [pending]) == (by_role.json()["items"], by_role.json()["invitations"])


class TestKeyVisibility:
    async def test_a_member_sees_and_manages_only_its_own_keys(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        ada, ada_token = await signed_in(api, tenant["id"], "member", "ada@example.com")
        bob = await create_user(api, "bob@example.com", password=None)
        await add_member(api, tenant["id"], bob["id"], "member")
        _, boss_token = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        keys = f"/v1/tenants/{tenant['id']}/keys"

        bobs, _ = await api.key(tenant["id"], owner_id=bob["id"])
        unowned, _ = await api.key(tenant["id"])
        mine = await api.client.post(keys, json={"name": "mine"}, headers=api.auth(ada_token))
        assert (201, ada["id"]) == (mine.status_code, mine.json()["key"]["owner_id"])
        ada_key = mine.json()["key"]

        for query in ("", f"?owner_id={bob['id']}", "?include_system=true"):
            listed = await api.client.get(keys + query, headers=api.auth(ada_token))
            assert [ada_key["id"]] == [k["id"] for k in listed.json()["items"]], query
        for key in (bobs, unowned):
            for method in ("GET", "DELETE"):
                response = await api.client.request(
                    method, f"{keys}/{key['id']}", headers=api.auth(ada_token)
                )
                assert (404, "key.not_found") == (response.status_code, response.json()["code"])
            rotate = await api.client.post(
                f"{keys}/{key['id']}/rotate", headers=api.auth(ada_token)
            )
            assert 404 == rotate.status_code
        for_bob = await api.client.post(
            keys, json={"name": "for bob", "owner_id": bob["id"]}, headers=api.auth(ada_token)
        )
        assert (403, "auth.forbidden") == (for_bob.status_code, for_bob.json()["code"])
        give_away = await api.client.patch(
            f"{keys}/{ada_key['id']}", json={"owner_id": bob["id"]}, headers=api.auth(ada_token)
        )
        assert 403 == give_away.status_code
        own = await api.client.get(f"{keys}/{ada_key['id']}", headers=api.auth(ada_token))
        assert (200, ada_key) == (own.status_code, own.json())
        elsewhere = await api.client.get(
            f"/v1/tenants/{other['id']}/keys", headers=api.auth(ada_token)
        )
        assert (404, "tenant.not_found") == (elsewhere.status_code, elsewhere.json()["code"])

        everything = await api.client.get(keys, headers=api.auth(boss_token))
        assert {bobs["id"], unowned["id"], ada_key["id"]} == {
            k["id"] for k in everything.json()["items"]
        }
        assert (
            200
            == (
                await api.client.get(f"{keys}/{ada_key['id']}", headers=api.auth(boss_token))
            ).status_code
        )


DOCUMENTED = [
    ("post", "/v1/auth/login", "200", "SessionIssued"),
    ("post", "/v1/auth/logout", "204", None),
    ("get", "/v1/users/me", "200", "UserRead"),
    ("post", "/v1/users/me/tokens", "201", "UserTokenCreated"),
    ("get", "/v1/users/me/tokens", "200", "Page_UserTokenRead_"),
    ("delete", "/v1/users/me/tokens/{token_id}", "204", None),
    ("post", "/v1/admin/impersonate", "200", "SessionIssued"),
    ("post", "/v1/admin/stop-impersonation", "204", None),
    ("post", "/v1/admin/users", "201", "UserRead"),
    ("get", "/v1/admin/users", "200", "Page_UserRead_"),
    ("get", "/v1/admin/users/{user_id}", "200", "UserRead"),
    ("post", "/v1/tenants/{tenant_id}/members", "201", "MemberRead"),
    ("get", "/v1/tenants/{tenant_id}/members", "200", "Page_MemberRead_"),
    ("get", "/v1/tenants/{tenant_id}/members/{user_id}", "200", "MemberRead"),
    ("patch", "/v1/tenants/{tenant_id}/members/{user_id}", "200", "MemberRead"),
    ("delete", "/v1/tenants/{tenant_id}/members/{user_id}", "204", None),
    ("get", "/v1/tenants/{tenant_id}/users", "200", "TenantUsers"),
    ("post", "/v1/tenants/{tenant_id}/invitations", "201", "InvitationCreated"),
    ("get", "/v1/tenants/{tenant_id}/invitations", "200", "Page_InvitationRead_"),
    (
        "post",
        "/v1/tenants/{tenant_id}/invitations/{invitation_id}/revoke",
        "200",
        "InvitationRead",
    ),
    ("post", "/v1/invitations/accept", "200", "InvitationAccepted"),
    (
        "put",
        "/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}",
        "201",
        "SystemKeyIssued",
    ),
    (
        "put",
        "/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}",
        "200",
        "SystemKeyIssued",
    ),
    ("delete", "/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}", "204", None),
]


class TestOpenApi:
    async def test_people_routes_are_documented_with_their_models(self, api):
        schema = (await api.client.get("/openapi.json")).json()
        for method, path, status, model in DOCUMENTED:
            responses = schema["paths"][path][method]["responses"]
            content = responses[status].get("content", {}).get("application/json", {})
            expected = None if model is None else {"$ref": f"#/components/schemas/{model}"}
            assert expected == content.get("schema"), (method, path, status)

    async def test_public_routes_need_no_credential(self, api):
        schema = (await api.client.get("/openapi.json")).json()
        for path in ("/v1/auth/login", "/v1/invitations/accept"):
            assert "security" not in schema["paths"][path]["post"]
        assert "security" in schema["paths"]["/v1/auth/logout"]["post"]

    async def test_list_keys_documents_include_system(self, api):
        schema = (await api.client.get("/openapi.json")).json()
        parameters = schema["paths"]["/v1/tenants/{tenant_id}/keys"]["get"]["parameters"]
        [flag] = [p for p in parameters if p["name"] == "include_system"]
        assert ("query", False) == (flag["in"], flag["schema"]["default"])
