"""Invitations: invite, list, revoke, accept (DESIGN.md §2, §11)."""

import logging
import secrets

import pytest

from keyrack.domain import keys as keyformat
from tests.api.people import PASSWORD, add_member, at, create_user, login, signed_in

pytestmark = pytest.mark.anyio


async def invite(api, tenant_id, email="eve@example.com", role="member", credential=None):
    response = await api.client.post(
        f"/v1/tenants/{tenant_id}/invitations",
        json={"email": email, "role": role},
        headers=api.auth(credential),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["invitation"], body["token"]


async def accept(api, token, **body):
    return await api.client.post("/v1/invitations/accept", json={"token": token, **body})


async def invitations(api, tenant_id, status="pending"):
    response = await api.client.get(
        f"/v1/tenants/{tenant_id}/invitations?status={status}", headers=api.auth()
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


class TestInviteAndAccept:
    async def test_a_new_user_accepts_once(self, api, clock):
        tenant = await api.tenant()
        boss, boss_token = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        created = await api.client.post(
            f"/v1/tenants/{tenant['id']}/invitations",
            json={"email": " Eve@Example.com", "role": "member"},
            headers=api.auth(boss_token),
        )
        assert 201 == created.status_code
        body = created.json()
        assert ["invitation", "token"] == sorted(body)
        invitation, token = body["invitation"], body["token"]
        assert token.startswith("krinv_")
        assert {
            "id": invitation["id"],
            "tenant_id": tenant["id"],
            "email": "eve@example.com",
            "role": "member",
            "invited_by": boss["id"],
            "status": "pending",
            "created_at": at(clock),
            "expires_at": at(clock, days=7),
            "accepted_at": None,
            "revoked_at": None,
        } == invitation
        assert [invitation] == await invitations(api, tenant["id"])

        clock.advance(60)
        accepted = await accept(api, token, name="Eve", password=PASSWORD)
        assert 200 == accepted.status_code
        result = accepted.json()
        membership = {"tenant_id": tenant["id"], "role": "member"}
        assert {
            "user": {
                "id": result["user"]["id"],
                "email": "eve@example.com",
                "name": "Eve",
                "is_platform_admin": False,
                "has_password": True,
                "created_at": at(clock),
                "memberships": [membership],
            },
            "membership": membership,
        } == result
        eve = await login(api, "eve@example.com")
        me = (await api.client.get("/v1/users/me", headers=api.auth(eve))).json()
        assert result["user"] == me

        reused = await accept(api, token, name="Eve", password=PASSWORD)
        assert (409, "invitation.closed") == (reused.status_code, reused.json()["code"])
        assert [] == await invitations(api, tenant["id"])
        closed = {**invitation, "status": "accepted", "accepted_at": at(clock)}
        assert [closed] == await invitations(api, tenant["id"], status="all")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": "Eve"},
            {"password": PASSWORD},
            {"name": "Eve", "password": "too short"},
            {"name": "", "password": PASSWORD},
        ],
        ids=["nothing", "no-password", "no-name", "short-password", "empty-name"],
    )
    async def test_a_new_user_needs_a_name_and_a_password(self, api, body):
        tenant = await api.tenant()
        invitation, token = await invite(api, tenant["id"])
        response = await accept(api, token, **body)
        assert 422 == response.status_code
        assert token not in response.text
        assert [invitation] == await invitations(api, tenant["id"])
        listed = (await api.client.get("/v1/admin/users", headers=api.auth())).json()
        assert [] == listed["items"]

    async def test_an_existing_user_accepts_without_a_password(self, api):
        tenant = await api.tenant()
        first = await api.tenant("First")
        ada = await create_user(api, "ada@example.com", password=None)
        await add_member(api, first["id"], ada["id"], "member")
        _, token = await invite(api, tenant["id"], email="ADA@example.com", role="admin")
        with_password = await accept(api, token, password=PASSWORD)
        with_name = await accept(api, token, name="Ada")
        for response in (with_password, with_name):
            assert 422 == response.status_code
        accepted = await accept(api, token)
        assert 200 == accepted.status_code
        body = accepted.json()
        assert (ada["id"], {"tenant_id": tenant["id"], "role": "admin"}) == (
            body["user"]["id"],
            body["membership"],
        )
        user = (await api.client.get(f"/v1/admin/users/{ada['id']}", headers=api.auth())).json()
        assert sorted(
            [
                {"tenant_id": first["id"], "role": "member"},
                {"tenant_id": tenant["id"], "role": "admin"},
            ],
            key=lambda m: m["tenant_id"],
        ) == sorted(user["memberships"], key=lambda m: m["tenant_id"])
        assert False is user["has_password"]

    async def test_an_expired_invitation_is_410(self, api, clock):
        tenant = await api.tenant()
        invitation, token = await invite(api, tenant["id"])
        clock.advance(7 * 24 * 3600 - 1)
        assert [invitation] == await invitations(api, tenant["id"])
        clock.advance(1)
        response = await accept(api, token, name="Eve", password=PASSWORD)
        assert (410, "invitation.expired") == (response.status_code, response.json()["code"])
        assert [] == await invitations(api, tenant["id"])
        assert [{**invitation, "status": "expired"}] == await invitations(
            api, tenant["id"], status="all"
        )
        view = (
            await api.client.get(f"/v1/tenants/{tenant['id']}/users", headers=api.auth())
        ).json()
        assert [] == view["invitations"]

    async def test_a_revoked_invitation_cannot_be_accepted(self, api, clock):
        tenant = await api.tenant()
        invitation, token = await invite(api, tenant["id"])
        path = f"/v1/tenants/{tenant['id']}/invitations/{invitation['id']}/revoke"
        clock.advance(10)
        revoked = await api.client.post(path, headers=api.auth())
        assert 200 == revoked.status_code
        closed = {**invitation, "status": "revoked", "revoked_at": at(clock)}
        assert closed == revoked.json()
        response = await accept(api, token, name="Eve", password=PASSWORD)
        assert (409, "invitation.closed") == (response.status_code, response.json()["code"])
        again = await api.client.post(path, headers=api.auth())
        assert (409, "invitation.closed") == (again.status_code, again.json()["code"])
        assert [closed] == await invitations(api, tenant["id"], status="all")

    async def test_revoking_an_unknown_invitation_is_404(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        invitation, _ = await invite(api, other["id"])
        for invitation_id in ("inv_nobody", invitation["id"]):
            response = await api.client.post(
                f"/v1/tenants/{tenant['id']}/invitations/{invitation_id}/revoke",
                headers=api.auth(),
            )
            assert (404, "invitation.not_found") == (
                response.status_code,
                response.json()["code"],
            )

    @pytest.mark.parametrize(
        "token",
        [
            keyformat.generate("krinv", entropy=secrets.token_bytes(keyformat.RANDOM_BYTES)),
            keyformat.generate("krses", entropy=secrets.token_bytes(keyformat.RANDOM_BYTES)),
            "krinv_not-a-token",
            "x" * 255,
        ],
        ids=["never-issued", "session-token", "malformed", "garbage"],
    )
    async def test_an_unknown_token_is_404(self, api, token):
        tenant = await api.tenant()
        await invite(api, tenant["id"])
        response = await accept(api, token, name="Eve", password=PASSWORD)
        assert (404, "invitation.not_found") == (response.status_code, response.json()["code"])

    async def test_a_tampered_token_is_404(self, api):
        tenant = await api.tenant()
        _, token = await invite(api, tenant["id"])
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        response = await accept(api, tampered, name="Eve", password=PASSWORD)
        assert 404 == response.status_code

    async def test_inviting_a_member_is_409(self, api):
        tenant = await api.tenant()
        ada = await create_user(api, "ada@example.com", password=None)
        await add_member(api, tenant["id"], ada["id"], "member")
        response = await api.client.post(
            f"/v1/tenants/{tenant['id']}/invitations",
            json={"email": "ada@example.com", "role": "admin"},
            headers=api.auth(),
        )
        assert (409, "member.exists") == (response.status_code, response.json()["code"])

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "eve@example.com", "role": "owner"},
            {"email": "eve@example.com", "role": "member", "tenant_id": "ten_x"},
            {"email": "eve@example.com", "role": "member", "is_platform_admin": True},
            {"email": "eve@example.com", "role": "member", "invited_by": "usr_x"},
            {"email": "not an email", "role": "member"},
            {"email": "eve@example.com"},
        ],
        ids=["role", "tenant", "platform-admin", "invited-by", "bad-email", "no-role"],
    )
    async def test_bad_invitations_are_422(self, api, body):
        tenant = await api.tenant()
        response = await api.client.post(
            f"/v1/tenants/{tenant['id']}/invitations", json=body, headers=api.auth()
        )
        assert 422 == response.status_code
        assert [] == await invitations(api, tenant["id"], status="all")

    @pytest.mark.parametrize(
        "extra",
        [{"role": "admin"}, {"tenant_id": "ten_x"}, {"is_platform_admin": True}],
        ids=["role", "tenant", "platform-admin"],
    )
    async def test_accept_takes_no_role_tenant_or_admin_flag(self, api, extra):
        tenant = await api.tenant()
        invitation, token = await invite(api, tenant["id"])
        response = await accept(api, token, name="Eve", password=PASSWORD, **extra)
        assert 422 == response.status_code
        assert [invitation] == await invitations(api, tenant["id"])

    async def test_an_invitation_is_for_its_tenant_only(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        _, token = await signed_in(api, tenant["id"], "admin", "boss@example.com")
        response = await api.client.post(
            f"/v1/tenants/{other['id']}/invitations",
            json={"email": "eve@example.com", "role": "admin"},
            headers=api.auth(token),
        )
        assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])

    async def test_status_query_is_checked(self, api):
        tenant = await api.tenant()
        response = await api.client.get(
            f"/v1/tenants/{tenant['id']}/invitations?status=expired", headers=api.auth()
        )
        assert 422 == response.status_code


class TestSecrecy:
    async def test_tokens_and_passwords_never_reach_logs_or_later_answers(self, api, caplog):
        caplog.set_level(logging.DEBUG)
        tenant = await api.tenant()
        _, token = await invite(api, tenant["id"])
        _, revoked_token = await invite(api, tenant["id"], email="mal@example.com")
        short = "tiny secret"
        answers = [
            await accept(api, token, name="Eve", password=short),
            await accept(api, token, name="Eve", password=PASSWORD),
            await accept(api, token, name="Eve", password=PASSWORD),
            await accept(api, revoked_token + "x", name="Mal", password=PASSWORD),
            await api.client.get(f"/v1/tenants/{tenant['id']}/invitations", headers=api.auth()),
            await api.client.get(f"/v1/tenants/{tenant['id']}/users", headers=api.auth()),
            await api.client.get("/v1/admin/users", headers=api.auth()),
        ]
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        for secret in (token, revoked_token, PASSWORD, short):
            assert secret not in logged
            for response in answers:
                assert secret not in response.text
