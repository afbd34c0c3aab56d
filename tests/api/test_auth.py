"""Login, logout, personal access tokens and impersonation over HTTP (DESIGN.md §6, §11)."""

import logging
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from keyrack.schemas.people import (
    InvitationAccept,
    LoginRequest,
    SessionIssued,
    UserCreate,
    UserTokenCreated,
    UserTokenRead,
)
from tests.api.people import PASSWORD, add_member, at, audit_rows, create_user, login, signed_in

pytestmark = pytest.mark.anyio


class TestLogin:
    async def test_login_opens_a_twelve_hour_session(self, api, clock):
        user = await create_user(api, "ada@example.com")
        response = await api.client.post(
            "/v1/auth/login", json={"email": "Ada@Example.com ", "password": PASSWORD}
        )
        assert 200 == response.status_code
        body = response.json()
        assert ["expires_at", "token"] == sorted(body)
        assert body["token"].startswith("krses_")
        assert at(clock, hours=12) == body["expires_at"]
        me = await api.client.get("/v1/users/me", headers=api.auth(body["token"]))
        assert (200, user["id"]) == (me.status_code, me.json()["id"])

    @pytest.mark.parametrize(
        ("email", "password"),
        [
            ("ada@example.com", PASSWORD + "!"),
            ("nobody@example.com", PASSWORD),
            ("not an email", PASSWORD),
        ],
        ids=["wrong-password", "unknown-email", "malformed-email"],
    )
    async def test_a_failed_login_is_one_401_for_every_cause(self, api, email, password):
        await create_user(api, "ada@example.com")
        response = await api.client.post(
            "/v1/auth/login", json={"email": email, "password": password}
        )
        assert 401 == response.status_code
        body = response.json()
        assert ("auth.unauthenticated", "wrong email or password") == (
            body["code"],
            body["detail"],
        )

    async def test_a_user_without_a_password_cannot_log_in(self, api):
        await create_user(api, "ada@example.com", password=None)
        response = await api.client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert 401 == response.status_code

    async def test_the_eleventh_failure_in_fifteen_minutes_is_refused_even_when_right(
        self, api, clock
    ):
        await create_user(api, "ada@example.com")
        wrong = {"email": "ada@example.com", "password": "not the password at all"}
        for _ in range(10):
            assert 401 == (await api.client.post("/v1/auth/login", json=wrong)).status_code
            clock.advance(1)
        right = {"email": "ada@example.com", "password": PASSWORD}
        refused = await api.client.post("/v1/auth/login", json=right)
        assert (429, "auth.too_many_attempts") == (refused.status_code, refused.json()["code"])
        # Retry-After is honest: a second early is still refused (a refusal adds nothing),
        # on time the right password works again.
        retry_after = int(refused.headers["Retry-After"])
        assert 15 * 60 - 10 <= retry_after <= 16 * 60
        clock.advance(retry_after - 1)
        assert 429 == (await api.client.post("/v1/auth/login", json=right)).status_code
        clock.advance(1)
        assert 200 == (await api.client.post("/v1/auth/login", json=right)).status_code

    async def test_the_limit_is_per_account(self, api):
        await create_user(api, "ada@example.com")
        await create_user(api, "bob@example.com")
        wrong = {"email": "ada@example.com", "password": "not the password at all"}
        for _ in range(11):
            await api.client.post("/v1/auth/login", json=wrong)
        assert (
            200
            == (
                await api.client.post(
                    "/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
                )
            ).status_code
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "ada@example.com"},
            {"email": "ada@example.com", "password": 12345678901234},
            {"email": "ada@example.com", "password": PASSWORD, "is_platform_admin": True},
            {"email": "ada@example.com", "password": "x" * 1025},
        ],
        ids=["no-password", "number", "extra-field", "too-long"],
    )
    async def test_a_malformed_login_is_422_and_never_echoes_the_password(self, api, body):
        response = await api.client.post("/v1/auth/login", json=body)
        assert (422, "request.invalid") == (response.status_code, response.json()["code"])
        if "password" in body:
            assert str(body["password"]) not in response.text

    async def test_logout_revokes_the_session(self, api):
        await create_user(api, "ada@example.com")
        token = await login(api, "ada@example.com")
        assert (
            204 == (await api.client.post("/v1/auth/logout", headers=api.auth(token))).status_code
        )
        after = await api.client.get("/v1/users/me", headers=api.auth(token))
        assert (401, "Bearer") == (after.status_code, after.headers["WWW-Authenticate"])

    async def test_a_session_expires(self, api, clock):
        await create_user(api, "ada@example.com")
        token = await login(api, "ada@example.com")
        clock.advance(12 * 3600)
        assert 401 == (await api.client.get("/v1/users/me", headers=api.auth(token))).status_code

    async def test_logout_is_for_users(self, api):
        assert 403 == (await api.client.post("/v1/auth/logout", headers=api.auth())).status_code
        assert 401 == (await api.client.post("/v1/auth/logout")).status_code


class TestMe:
    async def test_me_shows_the_user_and_its_memberships(self, api):
        tenant = await api.tenant()
        user, token = await signed_in(api, tenant["id"], "member", "ada@example.com")
        me = (await api.client.get("/v1/users/me", headers=api.auth(token))).json()
        assert {**user, "memberships": [{"tenant_id": tenant["id"], "role": "member"}]} == me


class TestPersonalTokens:
    async def test_create_list_use_revoke(self, api, clock):
        tenant = await api.tenant()
        user, session = await signed_in(api, tenant["id"], "member", "ada@example.com")
        created = await api.client.post(
            "/v1/users/me/tokens", json={"name": "ci"}, headers=api.auth(session)
        )
        assert 201 == created.status_code
        body = created.json()
        token, secret = body["token"], body["secret"]
        assert secret.startswith("krpat_")
        assert {
            "id": token["id"],
            "name": "ci",
            "start": secret[: len(token["start"])],
            "created_at": at(clock),
            "expires_at": at(clock, days=90),
            "revoked_at": None,
            "last_used_at": None,
        } == token
        listed = await api.client.get("/v1/users/me/tokens", headers=api.auth(session))
        assert {"items": [token], "next_cursor": None} == listed.json()
        assert secret not in listed.text

        # The token acts with the user's own rights: its own keys, not the member list.
        keys = f"/v1/tenants/{tenant['id']}/keys"
        own = await api.client.post(keys, json={"name": "mine"}, headers=api.auth(secret))
        assert (201, user["id"]) == (own.status_code, own.json()["key"]["owner_id"])
        members = f"/v1/tenants/{tenant['id']}/members"
        assert 403 == (await api.client.get(members, headers=api.auth(secret))).status_code

        revoked = await api.client.delete(
            f"/v1/users/me/tokens/{token['id']}", headers=api.auth(session)
        )
        assert 204 == revoked.status_code
        assert 401 == (await api.client.get(keys, headers=api.auth(secret))).status_code
        listed = await api.client.get("/v1/users/me/tokens", headers=api.auth(session))
        assert at(clock) == listed.json()["items"][0]["revoked_at"]

    async def test_a_token_follows_the_users_role(self, api):
        tenant = await api.tenant()
        user, session = await signed_in(api, tenant["id"], "member", "ada@example.com")
        secret = (
            await api.client.post(
                "/v1/users/me/tokens", json={"name": "ci"}, headers=api.auth(session)
            )
        ).json()["secret"]
        members = f"/v1/tenants/{tenant['id']}/members"
        assert 403 == (await api.client.get(members, headers=api.auth(secret))).status_code
        await api.client.patch(
            f"{members}/{user['id']}", json={"role": "admin"}, headers=api.auth()
        )
        assert 200 == (await api.client.get(members, headers=api.auth(secret))).status_code

    async def test_another_users_token_is_not_found(self, api):
        await create_user(api, "ada@example.com")
        await create_user(api, "bob@example.com")
        ada = await login(api, "ada@example.com")
        bob = await login(api, "bob@example.com")
        token_id = (
            await api.client.post("/v1/users/me/tokens", json={"name": "x"}, headers=api.auth(ada))
        ).json()["token"]["id"]
        response = await api.client.delete(f"/v1/users/me/tokens/{token_id}", headers=api.auth(bob))
        assert (404, "token.not_found") == (response.status_code, response.json()["code"])

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "ci", "user_id": "usr_0"},
            {"name": "ci", "expires_at": "2030-01-01T00:00:00"},
            {"name": ""},
        ],
        ids=["mass-assignment", "naive-expiry", "empty-name"],
    )
    async def test_bad_token_requests_are_422(self, api, body):
        await create_user(api, "ada@example.com")
        session = await login(api, "ada@example.com")
        response = await api.client.post(
            "/v1/users/me/tokens", json=body, headers=api.auth(session)
        )
        assert 422 == response.status_code

    async def test_an_expiry_beyond_366_days_is_422(self, api, clock):
        await create_user(api, "ada@example.com")
        session = await login(api, "ada@example.com")
        response = await api.client.post(
            "/v1/users/me/tokens",
            json={"name": "ci", "expires_at": at(clock, days=367)},
            headers=api.auth(session),
        )
        assert 422 == response.status_code

    async def test_root_keys_have_no_personal_tokens(self, api):
        response = await api.client.get("/v1/users/me/tokens", headers=api.auth())
        assert 403 == response.status_code


class TestImpersonation:
    async def _admin_and_member(self, api):
        tenant = await api.tenant()
        admin = await create_user(api, "root@example.com", is_platform_admin=True)
        admin_token = await login(api, "root@example.com")
        member = await create_user(api, "ada@example.com", password=None)
        await add_member(api, tenant["id"], member["id"], "member")
        return tenant, admin, admin_token, member

    async def test_the_session_has_exactly_the_members_rights_and_is_attributed(self, api, clock):
        tenant, admin, admin_token, member = await self._admin_and_member(api)
        started = await api.client.post(
            "/v1/admin/impersonate", json={"user_id": member["id"]}, headers=api.auth(admin_token)
        )
        assert 200 == started.status_code
        session = started.json()
        assert ["expires_at", "token"] == sorted(session)
        assert session["token"].startswith("krimp_")
        assert at(clock, minutes=15) == session["expires_at"]
        token = session["token"]

        me = (await api.client.get("/v1/users/me", headers=api.auth(token))).json()
        assert member["id"] == me["id"]
        for path in (f"/v1/tenants/{tenant['id']}/members", "/v1/admin/users"):
            denied = await api.client.get(path, headers=api.auth(token))
            assert 403 == denied.status_code, path
        again = await api.client.post(
            "/v1/admin/impersonate", json={"user_id": member["id"]}, headers=api.auth(token)
        )
        assert 403 == again.status_code
        created = await api.client.post(
            f"/v1/tenants/{tenant['id']}/keys", json={"name": "k"}, headers=api.auth(token)
        )
        assert (201, member["id"]) == (created.status_code, created.json()["key"]["owner_id"])

        [row] = await audit_rows(api, "key.created")
        assert (
            tenant["id"],
            "user",
            member["id"],
            "user",
            admin["id"],
            created.json()["key"]["id"],
        ) == (
            row.tenant_id,
            row.actor_type,
            row.actor_id,
            row.impersonator_type,
            row.impersonator_id,
            row.target_id,
        )
        [start] = await audit_rows(api, "impersonation.started")
        assert (admin["id"], member["id"]) == (start.actor_id, start.target_id)

        stopped = await api.client.post("/v1/admin/stop-impersonation", headers=api.auth(token))
        assert 204 == stopped.status_code
        assert 401 == (await api.client.get("/v1/users/me", headers=api.auth(token))).status_code
        [stop] = await audit_rows(api, "impersonation.stopped")
        assert (admin["id"], None, member["id"]) == (
            stop.actor_id,
            stop.impersonator_id,
            stop.target_id,
        )
        # The admin's own session is untouched.
        assert (
            200
            == (await api.client.get("/v1/admin/users", headers=api.auth(admin_token))).status_code
        )

    async def test_the_session_ends_by_itself(self, api, clock):
        _, _, admin_token, member = await self._admin_and_member(api)
        token = (
            await api.client.post(
                "/v1/admin/impersonate",
                json={"user_id": member["id"]},
                headers=api.auth(admin_token),
            )
        ).json()["token"]
        clock.advance(15 * 60)
        assert 401 == (await api.client.get("/v1/users/me", headers=api.auth(token))).status_code

    async def test_a_platform_admin_cannot_be_impersonated(self, api):
        _, _, admin_token, _ = await self._admin_and_member(api)
        other = await create_user(api, "root2@example.com", password=None, is_platform_admin=True)
        response = await api.client.post(
            "/v1/admin/impersonate", json={"user_id": other["id"]}, headers=api.auth(admin_token)
        )
        assert (403, "auth.forbidden") == (response.status_code, response.json()["code"])

    async def test_a_tenant_admin_cannot_impersonate(self, api):
        tenant, _, _, member = await self._admin_and_member(api)
        _, tenant_admin = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        response = await api.client.post(
            "/v1/admin/impersonate", json={"user_id": member["id"]}, headers=api.auth(tenant_admin)
        )
        assert 403 == response.status_code

    async def test_an_unknown_user_is_404(self, api):
        _, _, admin_token, _ = await self._admin_and_member(api)
        response = await api.client.post(
            "/v1/admin/impersonate",
            json={"user_id": "usr_nobody"},
            headers=api.auth(admin_token),
        )
        assert (404, "user.not_found") == (response.status_code, response.json()["code"])

    async def test_stop_needs_an_impersonation_session(self, api):
        _, _, admin_token, _ = await self._admin_and_member(api)
        response = await api.client.post(
            "/v1/admin/stop-impersonation", headers=api.auth(admin_token)
        )
        assert 422 == response.status_code

    async def test_impersonation_cannot_touch_personal_tokens(self, api):
        _, _, admin_token, member = await self._admin_and_member(api)
        token = (
            await api.client.post(
                "/v1/admin/impersonate",
                json={"user_id": member["id"]},
                headers=api.auth(admin_token),
            )
        ).json()["token"]
        response = await api.client.post(
            "/v1/users/me/tokens", json={"name": "backdoor"}, headers=api.auth(token)
        )
        assert 403 == response.status_code


class TestSecrecy:
    async def test_passwords_and_tokens_never_reach_logs_or_later_answers(self, api, caplog):
        caplog.set_level(logging.DEBUG)
        tenant = await api.tenant()
        await create_user(api, "root@example.com", is_platform_admin=True)
        member = await create_user(api, "ada@example.com")
        await add_member(api, tenant["id"], member["id"], "member")
        wrong = "this is not the password"
        await api.client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": wrong}
        )
        await api.client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": "short"}
        )
        session = await login(api, "ada@example.com")
        admin_session = await login(api, "root@example.com")
        pat = (
            await api.client.post(
                "/v1/users/me/tokens", json={"name": "ci"}, headers=api.auth(session)
            )
        ).json()["secret"]
        impersonation = (
            await api.client.post(
                "/v1/admin/impersonate",
                json={"user_id": member["id"]},
                headers=api.auth(admin_session),
            )
        ).json()["token"]
        later = [
            await api.client.get("/v1/users/me", headers=api.auth(session)),
            await api.client.get("/v1/users/me/tokens", headers=api.auth(session)),
            await api.client.get("/v1/admin/users", headers=api.auth(admin_session)),
            await api.client.get("/v1/users/me", headers=api.auth(impersonation + "x")),
        ]
        await api.client.post("/v1/auth/logout", headers=api.auth(session))
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        for secret in (PASSWORD, wrong, session, admin_session, pat, impersonation):
            assert secret not in logged
            for response in later:
                assert secret not in response.text

    def test_reprs_hold_no_password_or_token(self):
        secret = "krses_" + "A" * 40
        models = [
            LoginRequest(email="ada@example.com", password=SecretStr(PASSWORD)),
            UserCreate(email="ada@example.com", name="Ada", password=SecretStr(PASSWORD)),
            InvitationAccept(token=SecretStr(secret), password=SecretStr(PASSWORD)),
            SessionIssued(token=secret, expires_at=datetime.now(UTC)),
            UserTokenCreated(
                token=UserTokenRead(
                    id="tok_1",
                    name="ci",
                    start="krpat_AAAA",
                    created_at=datetime.now(UTC),
                    expires_at=datetime.now(UTC),
                    revoked_at=None,
                    last_used_at=None,
                ),
                secret=secret,
            ),
        ]
        for model in models:
            for shown in (repr(model), str(model)):
                assert PASSWORD not in shown
                assert secret not in shown
