import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from click.testing import Result

from keyrack.cli.runner import run
from keyrack.config import Settings
from keyrack.domain.audit import Ref
from keyrack.domain.permissions import Principal
from keyrack.runtime import Runtime, open_runtime
from keyrack.schemas.common import Page
from keyrack.schemas.people import (
    InvitationAccepted,
    InvitationCreated,
    InvitationRead,
    MemberRead,
    SessionIssued,
    SystemKeyIssued,
    TenantUsers,
    UserRead,
)
from keyrack.services.authz import OPERATOR
from tests.cli.conftest import Cli
from tests.fakes import FakeClock

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "tr0ub4dor & 3, but longer"


def _error(result: Result) -> str:
    """The error line: the last line on stderr (INFO log lines may come before it)."""
    last: str = result.stderr.splitlines()[-1]
    return last


def _refused(result: Result, message: str) -> None:
    assert (2, message) == (result.exit_code, _error(result)), result.stdout


def _settings(cli: Cli) -> Settings:
    return Settings(_env_file=None, database_url=cli.database_url, secrets_file=cli.secrets_file)


def _on_runtime(cli: Cli, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` on the CLI's database and secrets, as a command would."""
    return run(_settings(cli), work)


def _login(cli: Cli, email: str, password: str) -> str:
    """The user id a password login opens a session for (the password really is stored)."""
    issued = _on_runtime(cli, lambda rt: rt.auth.login(email, password))
    cli.secrets.append(issued.secret)
    return issued.token.user_id


def _user(cli: Cli, email: str = "ann@example.com", *args: str, name: str = "Ann") -> Any:
    return cli.json("users", "create", "--email", email, "--name", name, *args)


def _member(cli: Cli, tenant_id: str, role: str = "admin", **user: Any) -> Any:
    made = _user(cli, **user)
    cli.json("members", "add", tenant_id, made["id"], "--role", role)
    return made


def _invite(cli: Cli, tenant_id: str, email: str = "bob@example.com", role: str = "member") -> Any:
    created = cli.json("invitations", "create", tenant_id, "--email", email, "--role", role)
    cli.secrets.append(created["token"])
    return created


@pytest.fixture
def tenant_id(ready: Cli) -> str:
    tenant_id: str = ready.tenant()["id"]
    return tenant_id


class TestUsersCreate:
    def test_json_is_the_wire_shape(self, ready):
        user = _user(ready)

        assert UserRead.model_validate(user).model_dump(mode="json") == user
        assert ("ann@example.com", "Ann", False, False, []) == (
            user["email"],
            user["name"],
            user["is_platform_admin"],
            user["has_password"],
            user["memberships"],
        )
        assert user["id"].startswith("usr_")

    def test_password_from_stdin_is_the_one_that_logs_in(self, ready):
        ready.secrets.append(PASSWORD)
        result = ready.run(
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "Ann",
            "--password-stdin",
            "--json",
            input=PASSWORD + "\n",
        )

        assert 0 == result.exit_code, result.stderr
        user = UserRead.model_validate_json(result.stdout)
        assert user.has_password
        assert PASSWORD not in result.stdout
        assert user.id == _login(ready, "ann@example.com", PASSWORD)

    def test_platform_admin_flag(self, ready):
        assert _user(ready, "root@example.com", "--platform-admin")["is_platform_admin"]

    def test_human_output_lists_the_fields(self, ready):
        result = ready.ok("users", "create", "--email", "ann@example.com", "--name", "Ann")

        assert "email:             ann@example.com" in result.stdout
        assert "tenants:           -" in result.stdout

    def test_short_password_is_refused_without_echoing_it(self, ready):
        ready.secrets.append("short-pw")
        result = ready.run(
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "Ann",
            "--password-stdin",
            input="short-pw\n",
        )

        _refused(result, "error: password must be at least 12 characters (invalid_input)")
        assert "short-pw" not in result.stdout
        assert [] == ready.json("users", "list")["items"]

    def test_password_stdin_without_a_line_is_a_usage_error(self, ready):
        result = ready.run(
            "users", "create", "--email", "a@example.com", "--name", "A", "--password-stdin"
        )

        assert 2 == result.exit_code
        assert "expected the password on a line of stdin" in result.stderr

    def test_password_is_never_an_argument(self, ready):
        result = ready.run(
            "users", "create", "--email", "a@example.com", "--name", "A", "--password", PASSWORD
        )

        assert 2 == result.exit_code
        assert "No such option '--password'" in result.stderr
        assert PASSWORD not in result.stderr

    def test_duplicate_email_exits_2(self, ready):
        _user(ready)

        result = ready.run("users", "create", "--email", "ANN@example.com", "--name", "Ann 2")

        _refused(result, "error: a user with this email already exists (user.duplicate_email)")

    def test_bad_email_exits_2(self, ready):
        result = ready.run("users", "create", "--email", "not-an-email", "--name", "X")

        _refused(
            result,
            "error: email must be an email address (at most 254 characters) (invalid_input)",
        )


class TestUsersListAndShow:
    def test_list_pages_oldest_first(self, ready):
        made = [_user(ready, f"u{n}@example.com", name=f"U{n}") for n in range(3)]

        first = ready.json("users", "list", "--limit", "2")
        rest = ready.json("users", "list", "--cursor", first["next_cursor"])

        assert Page[UserRead].model_validate(first).model_dump(mode="json") == first
        assert [u["id"] for u in made] == [u["id"] for u in first["items"] + rest["items"]]
        assert rest["next_cursor"] is None

    def test_list_filters_by_tenant_and_role(self, ready, tenant_id):
        admin = _member(ready, tenant_id, "admin", email="a@example.com")
        member = _member(ready, tenant_id, "member", email="m@example.com")
        _user(ready, "loner@example.com")

        in_tenant = ready.json("users", "list", "--tenant", tenant_id)
        admins = ready.json("users", "list", "--tenant", tenant_id, "--role", "admin")

        assert [admin["id"], member["id"]] == [u["id"] for u in in_tenant["items"]]
        assert [admin["id"]] == [u["id"] for u in admins["items"]]
        assert [{"tenant_id": tenant_id, "role": "admin"}] == admins["items"][0]["memberships"]

    def test_list_refuses_an_unknown_role(self, ready):
        result = ready.run("users", "list", "--role", "owner")

        assert 2 == result.exit_code
        assert "'owner' is not one of 'admin', 'member'" in result.stderr

    def test_list_as_a_table(self, ready, tenant_id):
        user = _member(ready, tenant_id, "admin")

        table = ready.ok("users", "list").stdout

        assert "IS_PLATFORM_ADMIN" in table
        assert f"{tenant_id} (admin)" in table
        assert user["id"] in table

    def test_empty_list_says_so(self, ready):
        assert "no users" in ready.ok("users", "list").stdout

    def test_show_has_the_memberships(self, ready, tenant_id):
        user = _member(ready, tenant_id, "member")

        shown = ready.json("users", "show", user["id"])

        assert {**user, "memberships": [{"tenant_id": tenant_id, "role": "member"}]} == shown

    def test_show_unknown_user_exits_2(self, ready):
        _refused(ready.run("users", "show", "usr_nope"), "error: user not found (user.not_found)")


class TestMembers:
    def test_add_json_is_the_wire_shape(self, ready, tenant_id):
        user = _user(ready)

        member = ready.json("members", "add", tenant_id, user["id"], "--role", "admin")

        assert MemberRead.model_validate(member).model_dump(mode="json") == member
        assert (user["id"], "ann@example.com", "admin") == (
            member["user_id"],
            member["email"],
            member["role"],
        )

    @pytest.mark.parametrize(
        ("tenant", "user", "message"),
        [
            ("ten_nope", "known", "error: tenant not found (tenant.not_found)"),
            ("known", "usr_nope", "error: user not found (user.not_found)"),
        ],
        ids=["unknown-tenant", "unknown-user"],
    )
    def test_add_unknown_exits_2(self, ready, tenant_id, tenant, user, message):
        known = _user(ready)["id"]
        tenant = tenant_id if tenant == "known" else tenant
        user = known if user == "known" else user

        _refused(ready.run("members", "add", tenant, user, "--role", "member"), message)

    def test_add_twice_exits_2(self, ready, tenant_id):
        user = _member(ready, tenant_id)

        result = ready.run("members", "add", tenant_id, user["id"], "--role", "member")

        _refused(result, "error: the user is already a member of this tenant (member.exists)")

    def test_role_must_be_admin_or_member(self, ready, tenant_id):
        user = _user(ready)

        result = ready.run("members", "add", tenant_id, user["id"], "--role", "owner")

        assert 2 == result.exit_code
        assert "'owner' is not one of 'admin', 'member'" in result.stderr

    def test_list_has_members_and_pending_invitations(self, ready, tenant_id):
        admin = _member(ready, tenant_id, "admin", email="a@example.com")
        member = _member(ready, tenant_id, "member", email="m@example.com")
        invited = _invite(ready, tenant_id)["invitation"]

        people = ready.json("members", "list", tenant_id)
        admins = ready.json("members", "list", tenant_id, "--role", "admin")

        assert TenantUsers.model_validate(people).model_dump(mode="json") == people
        assert [admin["id"], member["id"]] == [m["user_id"] for m in people["items"]]
        assert [invited] == people["invitations"]
        assert [admin["id"]] == [m["user_id"] for m in admins["items"]]

    def test_list_pages(self, ready, tenant_id):
        made = [_member(ready, tenant_id, email=f"u{n}@example.com") for n in range(3)]

        first = ready.json("members", "list", tenant_id, "--limit", "2")
        rest = ready.json("members", "list", tenant_id, "--cursor", first["next_cursor"])

        assert [u["id"] for u in made] == [m["user_id"] for m in first["items"] + rest["items"]]

    def test_list_as_a_table(self, ready, tenant_id):
        _member(ready, tenant_id)
        _invite(ready, tenant_id)

        table = ready.ok("members", "list", tenant_id).stdout

        assert "ann@example.com" in table
        assert "pending invitations:" in table
        assert "bob@example.com" in table

    def test_empty_list_says_so(self, ready, tenant_id):
        table = ready.ok("members", "list", tenant_id).stdout

        assert "no members" in table
        assert "pending invitations" not in table

    def test_list_of_unknown_tenant_exits_2(self, ready):
        _refused(
            ready.run("members", "list", "ten_nope"), "error: tenant not found (tenant.not_found)"
        )

    def test_set_role_promotes_and_demotes(self, ready, tenant_id):
        first = _member(ready, tenant_id, "admin", email="a@example.com")
        second = _member(ready, tenant_id, "member", email="m@example.com")

        promoted = ready.json("members", "set-role", tenant_id, second["id"], "--role", "admin")
        demoted = ready.json("members", "set-role", tenant_id, first["id"], "--role", "member")

        assert ("admin", "member") == (promoted["role"], demoted["role"])
        assert MemberRead.model_validate(demoted).model_dump(mode="json") == demoted

    def test_last_admin_cannot_be_demoted(self, ready, tenant_id):
        admin = _member(ready, tenant_id, "admin")

        result = ready.run("members", "set-role", tenant_id, admin["id"], "--role", "member")

        _refused(
            result,
            "error: a tenant keeps at least one admin: promote another member first"
            " (member.last_admin)",
        )
        assert "admin" == ready.json("users", "show", admin["id"])["memberships"][0]["role"]

    def test_set_role_of_a_non_member_exits_2(self, ready, tenant_id):
        _member(ready, tenant_id, "admin")
        outsider = _user(ready, "out@example.com")

        result = ready.run("members", "set-role", tenant_id, outsider["id"], "--role", "admin")

        _refused(result, "error: member not found (member.not_found)")

    def test_remove(self, ready, tenant_id):
        _member(ready, tenant_id, "admin", email="a@example.com")
        member = _member(ready, tenant_id, "member", email="m@example.com")

        removed = ready.json("members", "remove", tenant_id, member["id"])
        text = ready.ok("members", "list", tenant_id).stdout

        assert {"tenant_id": tenant_id, "user_id": member["id"], "removed": True} == removed
        assert "m@example.com" not in text
        assert [] == ready.json("users", "show", member["id"])["memberships"]

    def test_remove_in_words(self, ready, tenant_id):
        _member(ready, tenant_id, "admin", email="a@example.com")
        member = _member(ready, tenant_id, "member", email="m@example.com")

        result = ready.ok("members", "remove", tenant_id, member["id"])

        assert f"removed {member['id']} from {tenant_id}\n" == result.stdout

    def test_last_admin_cannot_be_removed(self, ready, tenant_id):
        admin = _member(ready, tenant_id, "admin")

        result = ready.run("members", "remove", tenant_id, admin["id"])

        assert 2 == result.exit_code
        assert "(member.last_admin)" in _error(result)

    def test_remove_a_non_member_exits_2(self, ready, tenant_id):
        _member(ready, tenant_id, "admin")
        outsider = _user(ready, "out@example.com")

        result = ready.run("members", "remove", tenant_id, outsider["id"])

        _refused(result, "error: member not found (member.not_found)")


class TestInvitations:
    def test_create_prints_the_token_once(self, ready, tenant_id):
        result = ready.run(
            "invitations",
            "create",
            tenant_id,
            "--email",
            "Bob@Example.com",
            "--role",
            "admin",
            "--json",
        )

        assert 0 == result.exit_code, result.stderr
        body = json.loads(result.stdout)
        created = InvitationCreated.model_validate(body)
        ready.secrets.append(created.token)
        assert created.model_dump(mode="json") == body
        assert created.token.startswith("krinv_")
        assert ("bob@example.com", "admin", "pending", "cli") == (
            created.invitation.email,
            created.invitation.role,
            created.invitation.status,
            created.invitation.invited_by,
        )
        assert "shown only once" in result.stderr

    def test_create_in_words_shows_the_token(self, ready, tenant_id):
        result = ready.ok(
            "invitations", "create", tenant_id, "--email", "bob@example.com", "--role", "member"
        )
        token = next(
            line.split()[-1] for line in result.stdout.splitlines() if line.startswith("token:")
        )
        ready.secrets.append(token)

        assert token.startswith("krinv_")
        assert "status:      pending" in result.stdout

    def test_inviting_a_member_exits_2(self, ready, tenant_id):
        _member(ready, tenant_id)

        result = ready.run(
            "invitations", "create", tenant_id, "--email", "ann@example.com", "--role", "member"
        )

        _refused(result, "error: the user is already a member of this tenant (member.exists)")

    def test_list_shows_pending_unless_all(self, ready, tenant_id):
        kept = _invite(ready, tenant_id, "a@example.com")["invitation"]
        dropped = _invite(ready, tenant_id, "b@example.com")["invitation"]
        ready.ok("invitations", "revoke", tenant_id, dropped["id"])

        pending = ready.json("invitations", "list", tenant_id)
        every = ready.json("invitations", "list", tenant_id, "--all")

        assert Page[InvitationRead].model_validate(every).model_dump(mode="json") == every
        assert [kept] == pending["items"]
        assert [(kept["id"], "pending"), (dropped["id"], "revoked")] == [
            (i["id"], i["status"]) for i in every["items"]
        ]

    def test_list_as_a_table(self, ready, tenant_id):
        assert "no invitations" in ready.ok("invitations", "list", tenant_id).stdout
        _invite(ready, tenant_id)

        table = ready.ok("invitations", "list", tenant_id, "--limit", "1").stdout

        assert "STATUS" in table
        assert "bob@example.com" in table

    def test_revoke_twice_exits_2(self, ready, tenant_id):
        invitation = _invite(ready, tenant_id)["invitation"]

        revoked = ready.json("invitations", "revoke", tenant_id, invitation["id"])
        again = ready.run("invitations", "revoke", tenant_id, invitation["id"])

        assert InvitationRead.model_validate(revoked).model_dump(mode="json") == revoked
        assert "revoked" == revoked["status"]
        assert revoked["revoked_at"] is not None
        _refused(again, "error: this invitation was already used or revoked (invitation.closed)")

    def test_revoke_unknown_exits_2(self, ready, tenant_id):
        _refused(
            ready.run("invitations", "revoke", tenant_id, "inv_nope"),
            "error: invitation not found (invitation.not_found)",
        )


class TestAccept:
    def _accept(self, cli: Cli, *args: str, input: str) -> Result:
        return cli.run("invitations", "accept", *args, input=input)

    def test_new_user_with_token_and_password_on_stdin(self, ready, tenant_id):
        token = _invite(ready, tenant_id, role="admin")["token"]
        ready.secrets.append(PASSWORD)

        result = self._accept(
            ready,
            "--token-stdin",
            "--name",
            "Bob",
            "--password-stdin",
            "--json",
            input=f"{token}\n{PASSWORD}\n",
        )

        assert 0 == result.exit_code, result.stderr
        body = json.loads(result.stdout)
        accepted = InvitationAccepted.model_validate(body)
        assert accepted.model_dump(mode="json") == body
        assert ("bob@example.com", "Bob", True) == (
            accepted.user.email,
            accepted.user.name,
            accepted.user.has_password,
        )
        assert (tenant_id, "admin") == (accepted.membership.tenant_id, accepted.membership.role)
        assert accepted.user.id == _login(ready, "bob@example.com", PASSWORD)
        members = ready.json("members", "list", tenant_id)
        assert ([accepted.user.id], []) == (
            [m["user_id"] for m in members["items"]],
            members["invitations"],
        )

    def test_token_and_password_at_hidden_prompts(self, ready, tenant_id):
        token = _invite(ready, tenant_id)["token"]
        ready.secrets.append(PASSWORD)

        result = self._accept(ready, "--name", "Bob", input=f"{token}\n{PASSWORD}\n{PASSWORD}\n")

        assert 0 == result.exit_code, result.stderr
        assert "Invitation token" in result.stderr
        assert "Repeat for confirmation" in result.stderr
        assert token not in result.stdout
        assert PASSWORD not in result.stdout
        assert "joined" in result.stdout
        assert _login(ready, "bob@example.com", PASSWORD).startswith("usr_")

    def test_existing_user_joins_without_name_or_password(self, ready, tenant_id):
        other = ready.tenant("Other")["id"]
        user = _member(ready, other, "admin", email="bob@example.com")
        token = _invite(ready, tenant_id)["token"]

        result = self._accept(ready, "--token-stdin", "--json", input=token + "\n")

        assert 0 == result.exit_code, result.stderr
        accepted = InvitationAccepted.model_validate_json(result.stdout)
        assert user["id"] == accepted.user.id
        assert {(other, "admin"), (tenant_id, "member")} == {
            (m.tenant_id, m.role) for m in accepted.user.memberships
        }

    def test_reused_token_exits_2(self, ready, tenant_id):
        token = _invite(ready, tenant_id)["token"]
        ready.secrets.append(PASSWORD)
        lines = f"{token}\n{PASSWORD}\n"
        args = ("--token-stdin", "--name", "Bob", "--password-stdin")
        assert 0 == self._accept(ready, *args, input=lines).exit_code

        again = self._accept(ready, *args, input=lines)

        _refused(again, "error: this invitation was already used or revoked (invitation.closed)")

    def test_revoked_token_exits_2(self, ready, tenant_id):
        created = _invite(ready, tenant_id)
        ready.ok("invitations", "revoke", tenant_id, created["invitation"]["id"])

        result = self._accept(
            ready,
            "--token-stdin",
            "--name",
            "Bob",
            "--password-stdin",
            input=f"{created['token']}\n{PASSWORD}\n",
        )

        assert "(invitation.closed)" in _error(result)

    @pytest.mark.parametrize(
        "token",
        ["krinv_nope", "krses_" + "a" * 40, "not a token"],
        ids=["bad-checksum", "other-prefix", "garbage"],
    )
    def test_unknown_token_exits_2(self, ready, token):
        result = self._accept(ready, "--token-stdin", input=token + "\n")

        _refused(result, "error: invitation not found (invitation.not_found)")
        assert token not in result.stderr

    def test_new_user_without_a_name_exits_2(self, ready, tenant_id):
        token = _invite(ready, tenant_id)["token"]

        result = self._accept(ready, "--token-stdin", input=token + "\n")

        _refused(result, "error: a new user needs a name and a password (invalid_input)")
        assert 1 == len(ready.json("members", "list", tenant_id)["invitations"])

    def test_token_is_never_an_argument(self, ready):
        # click quotes an unexpected argument back, so this one is not a real token.
        result = ready.run("invitations", "accept", "krinv_placeholder", input="")

        assert 2 == result.exit_code
        assert "unexpected extra argument" in result.stderr

    def test_empty_stdin_is_a_usage_error(self, ready):
        result = self._accept(ready, "--token-stdin", input="")

        assert 2 == result.exit_code
        assert "expected the invitation token on a line of stdin" in result.stderr

    def _expired_token(self, ready: Cli, tenant_id: str) -> str:
        """An invitation made eight days ago (the CLI's clock is the real one)."""
        past = FakeClock(at=(datetime.now(UTC) - timedelta(days=8)).timestamp())

        async def invite() -> str:
            runtime = await open_runtime(_settings(ready), clock=past)
            try:
                _, token = await runtime.people.invite(
                    OPERATOR, tenant_id, email="late@example.com", role="member"
                )
            finally:
                await runtime.close()
            return token

        token = asyncio.run(invite())
        ready.secrets.append(token)
        return token

    def test_expired_token_says_so(self, ready, tenant_id):
        token = self._expired_token(ready, tenant_id)

        result = self._accept(ready, "--token-stdin", input=token + "\n")

        assert (
            "error: this invitation has expired: ask a tenant admin for a new one"
            " (invitation.expired)"
        ) == _error(result)

    def test_expired_token_exits_2_as_bad_input(self, ready, tenant_id):
        token = self._expired_token(ready, tenant_id)

        assert 2 == self._accept(ready, "--token-stdin", input=token + "\n").exit_code


class TestSystemKeys:
    @pytest.fixture
    def owner(self, ready: Cli, tenant_id: str) -> str:
        owner: str = _member(ready, tenant_id, "member")["id"]
        return owner

    def _put(self, cli: Cli, tenant_id: str, owner: str, *args: str, name: str = "svc") -> Any:
        issued = cli.json("system-keys", "put", tenant_id, owner, name, *args)
        cli.secrets.append(issued["secret"])
        return issued

    def test_put_creates_then_returns_the_same_key_and_secret(self, ready, tenant_id, owner):
        first = self._put(ready, tenant_id, owner, "--permission", "chat.write")
        again = self._put(ready, tenant_id, owner)

        issued = {k: v for k, v in first.items() if k != "created"}
        assert SystemKeyIssued.model_validate(issued).model_dump(mode="json") == issued
        assert (True, False) == (first["created"], again["created"])
        assert (first["key"]["id"], first["secret"]) == (again["key"]["id"], again["secret"])
        assert (True, True, owner, ["chat.write"], None) == (
            first["key"]["system"],
            first["key"]["recoverable"],
            first["key"]["owner_id"],
            first["key"]["permissions"],
            first["key"]["expires_at"],
        )

    def test_the_secret_verifies(self, ready, tenant_id, owner):
        secret = self._put(ready, tenant_id, owner)["secret"]

        result = ready.run("keys", "verify", "-", "--tenant", tenant_id, "--json", input=secret)

        assert 0 == result.exit_code, result.stderr

    def test_put_says_whether_it_created(self, ready, tenant_id, owner):
        first = ready.ok("system-keys", "put", tenant_id, owner, "svc")
        again = ready.ok("system-keys", "put", tenant_id, owner, "svc")
        secret = next(
            line.split()[-1] for line in first.stdout.splitlines() if line.startswith("secret:")
        )
        ready.secrets.append(secret)

        assert "created a new system key" in first.stderr
        assert "returned the existing system key" in again.stderr
        assert f"secret:                 {secret}" in again.stdout

    def test_put_with_expiry_and_meta(self, ready, tenant_id, owner):
        issued = self._put(
            ready,
            tenant_id,
            owner,
            "--expires-at",
            "2099-01-01T00:00:00Z",
            "--meta",
            '{"svc": "billing"}',
            "--description",
            "billing service",
        )

        assert ("2099-01-01T00:00:00Z", {"svc": "billing"}, "billing service") == (
            issued["key"]["expires_at"],
            issued["key"]["meta"],
            issued["key"]["description"],
        )

    def test_expiry_in_the_past_exits_2(self, ready, tenant_id, owner):
        result = ready.run(
            "system-keys", "put", tenant_id, owner, "svc", "--expires-at", "2000-01-01T00:00:00Z"
        )

        _refused(result, "error: expires_at must be in the future (invalid_input)")

    def test_unknown_user_exits_2(self, ready, tenant_id):
        _refused(
            ready.run("system-keys", "put", tenant_id, "usr_nope", "svc"),
            "error: user not found (user.not_found)",
        )

    def test_non_member_exits_2(self, ready, tenant_id):
        outsider = _user(ready, "out@example.com")["id"]

        _refused(
            ready.run("system-keys", "put", tenant_id, outsider, "svc"),
            "error: the user is not a member of this tenant (member.required)",
        )

    def test_delete_then_put_makes_a_new_key(self, ready, tenant_id, owner):
        first = self._put(ready, tenant_id, owner)

        deleted = ready.json("system-keys", "delete", tenant_id, owner, "svc")
        second = self._put(ready, tenant_id, owner)

        assert {"tenant_id": tenant_id, "user_id": owner, "name": "svc", "deleted": True} == (
            deleted
        )
        assert second["created"]
        assert first["key"]["id"] != second["key"]["id"]
        assert first["secret"] != second["secret"]

    def test_delete_in_words(self, ready, tenant_id, owner):
        self._put(ready, tenant_id, owner)

        result = ready.ok("system-keys", "delete", tenant_id, owner, "svc")

        assert f"deleted system key svc of {owner}\n" == result.stdout

    def test_delete_absent_exits_2(self, ready, tenant_id, owner):
        _refused(
            ready.run("system-keys", "delete", tenant_id, owner, "svc"),
            "error: key not found (key.not_found)",
        )


class TestImpersonate:
    def test_token_acts_as_the_user_with_the_operator_as_impersonator(self, ready, tenant_id):
        user = _member(ready, tenant_id, "member")

        session = ready.json("impersonate", user["id"])
        ready.secrets.append(session["token"])

        assert SessionIssued.model_validate(session).model_dump(mode="json") == session
        assert session["token"].startswith("krimp_")
        expires_at = datetime.fromisoformat(session["expires_at"])
        assert timedelta(0) < expires_at - datetime.now(UTC) <= timedelta(minutes=15)
        principal: Principal = _on_runtime(ready, lambda rt: rt.auth.authenticate(session["token"]))
        assert (user["id"], Ref("operator", "cli"), ((tenant_id, "member"),)) == (
            principal.id,
            principal.impersonator,
            principal.memberships,
        )

    def test_in_words(self, ready):
        user = _user(ready)

        result = ready.ok("impersonate", user["id"])
        token = next(
            line.split()[-1] for line in result.stdout.splitlines() if line.startswith("token:")
        )
        ready.secrets.append(token)

        assert token.startswith("krimp_")
        assert f"acting as {user['id']} until" in result.stderr

    def test_unknown_user_exits_2(self, ready):
        _refused(ready.run("impersonate", "usr_nope"), "error: user not found (user.not_found)")

    def test_platform_admin_cannot_be_impersonated(self, ready):
        admin = _user(ready, "root@example.com", "--platform-admin")

        _refused(
            ready.run("impersonate", admin["id"]),
            "error: platform admins cannot be impersonated (auth.forbidden)",
        )
