from datetime import UTC, datetime, timedelta

import pytest
from click.testing import Result

from keyrack.domain import keys as keyformat
from keyrack.schemas.common import Page
from keyrack.schemas.keys import KeyCreated, KeyRead
from keyrack.schemas.verify import VerifyResponse
from tests.cli.conftest import Cli


@pytest.fixture
def tenant_id(ready: Cli) -> str:
    tenant_id: str = ready.tenant()["id"]
    return tenant_id


def _error(result: Result) -> str:
    """The error line: the last line on stderr (INFO log lines may come before it)."""
    last: str = result.stderr.splitlines()[-1]
    return last


def _verify(cli: Cli, secret: str, *args: str) -> tuple[int, VerifyResponse]:
    result = cli.run("keys", "verify", secret, "--json", *args)
    return result.exit_code, VerifyResponse.model_validate_json(result.stdout)


class TestCreate:
    def test_json_is_the_wire_envelope_with_the_secret(self, ready, tenant_id):
        ready.ok("roles", "create", "--tenant", tenant_id, "admin")
        created = ready.key(
            tenant_id,
            "--description",
            "for the backend",
            "--expires-at",
            "2099-01-01T00:00:00Z",
            "--owner-id",
            "user_1",
            "--meta",
            '{"plan": "pro", "seats": 3}',
            "--permission",
            "chat.write",
            "--permission",
            "chat.read",
            "--role",
            "admin",
        )

        assert KeyCreated.model_validate(created).model_dump(mode="json") == created
        key = created["key"]
        assert keyformat.is_well_formed(created["secret"])
        assert created["secret"].startswith(key["start"])
        assert {
            "tenant_id": tenant_id,
            "name": "backend",
            "description": "for the backend",
            "status": "active",
            "expires_at": "2099-01-01T00:00:00Z",
            "owner_id": "user_1",
            "meta": {"plan": "pro", "seats": 3},
            "permissions": ["chat.write", "chat.read"],
            "roles": ["admin"],
        } == {
            name: key[name]
            for name in (
                "tenant_id",
                "name",
                "description",
                "status",
                "expires_at",
                "owner_id",
                "meta",
                "permissions",
                "roles",
            )
        }

    def test_says_on_stderr_that_the_secret_is_shown_once(self, ready, tenant_id):
        result = ready.ok("keys", "create", "--tenant", tenant_id, "--name", "k", "--json")
        ready.secrets.append(KeyCreated.model_validate_json(result.stdout).secret)

        assert "shown only once" in result.stderr

    def test_prints_fields_and_the_secret_without_json(self, ready, tenant_id):
        result = ready.ok("keys", "create", "--tenant", tenant_id, "--name", "k")

        fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
        secret = fields["secret"].strip()
        ready.secrets.append(secret)
        assert keyformat.is_well_formed(secret)
        assert "active" == fields["status"].strip()
        assert "k" == fields["name"].strip()


class TestVerify:
    def test_valid_then_revoked(self, ready, tenant_id):
        created = ready.key(tenant_id)

        valid_exit, valid = _verify(ready, created["secret"])
        ready.ok("keys", "revoke", "--tenant", tenant_id, created["key"]["id"])
        revoked_exit, revoked = _verify(ready, created["secret"])

        assert (0, "VALID", True) == (valid_exit, valid.code, valid.valid)
        assert (created["key"]["id"], tenant_id) == (valid.key_id, valid.tenant_id)
        assert (1, "REVOKED", False) == (revoked_exit, revoked.code, revoked.valid)

    def test_json_is_the_wire_verify_answer(self, ready, tenant_id):
        created = ready.key(tenant_id, "--meta", '{"plan": "pro"}', "--permission", "chat.write")

        answer = ready.json("keys", "verify", created["secret"])

        assert VerifyResponse.model_validate(answer).model_dump(mode="json") == answer
        assert ({"plan": "pro"}, ["chat.write"]) == (answer["meta"], answer["permissions"])

    def test_disabled_then_enabled(self, ready, tenant_id):
        created = ready.key(tenant_id)
        key_id = created["key"]["id"]

        ready.ok("keys", "disable", "--tenant", tenant_id, key_id)
        disabled = _verify(ready, created["secret"])
        ready.ok("keys", "enable", "--tenant", tenant_id, key_id)
        enabled = _verify(ready, created["secret"])

        assert (1, "DISABLED") == (disabled[0], disabled[1].code)
        assert (0, "VALID") == (enabled[0], enabled[1].code)

    def test_reads_the_key_from_stdin(self, ready, tenant_id):
        created = ready.key(tenant_id)

        result = ready.run("keys", "verify", "-", "--json", input=created["secret"] + "\n")

        assert 0 == result.exit_code
        assert "VALID" == VerifyResponse.model_validate_json(result.stdout).code

    def test_another_tenants_key_is_not_found(self, ready, tenant_id):
        created = ready.key(tenant_id)
        other = ready.tenant("Other")["id"]

        exit_code, answer = _verify(ready, created["secret"], "--tenant", other)

        assert (1, "NOT_FOUND", None) == (exit_code, answer.code, answer.key_id)

    @pytest.mark.parametrize(
        "presented", ["nonsense", "kr_" + "A" * 40, ""], ids=["garbage", "bad-checksum", "empty"]
    )
    def test_a_non_key_is_not_found(self, ready, presented):
        exit_code, answer = _verify(ready, presented)

        assert (1, "NOT_FOUND") == (exit_code, answer.code)

    def test_prints_fields_without_json(self, ready, tenant_id):
        created = ready.key(tenant_id)

        result = ready.run("keys", "verify", created["secret"])

        fields = {k: v.strip() for k, v in (ln.split(":", 1) for ln in result.stdout.splitlines())}
        assert (0, "true", "VALID") == (result.exit_code, fields["valid"], fields["code"])

    def test_records_last_used_at(self, ready, tenant_id):
        created = ready.key(tenant_id)
        ready.ok("keys", "verify", created["secret"])

        key = ready.json("keys", "get", "--tenant", tenant_id, created["key"]["id"])

        assert key["last_used_at"] is not None


class TestRotate:
    def test_keeps_the_id_and_issues_a_new_secret(self, ready, tenant_id):
        created = ready.key(tenant_id)
        key_id = created["key"]["id"]

        rotated = ready.json("keys", "rotate", "--tenant", tenant_id, key_id)
        ready.secrets.append(rotated["secret"])

        assert KeyCreated.model_validate(rotated).model_dump(mode="json") == rotated
        assert key_id == rotated["key"]["id"]
        assert created["secret"] != rotated["secret"]
        new_exit, new_answer = _verify(ready, rotated["secret"])
        old_exit, old_answer = _verify(ready, created["secret"])
        assert (0, "VALID") == (new_exit, new_answer.code)
        assert (1, "EXPIRED") == (old_exit, old_answer.code)

    def test_old_secret_lives_through_the_grace(self, ready, tenant_id):
        created = ready.key(tenant_id)

        rotated = ready.json(
            "keys", "rotate", "--tenant", tenant_id, created["key"]["id"], "--grace-seconds", "600"
        )
        ready.secrets.append(rotated["secret"])

        assert 0 == _verify(ready, created["secret"])[0]
        assert 0 == _verify(ready, rotated["secret"])[0]


class TestReadAndDelete:
    def test_get_is_the_wire_key(self, ready, tenant_id):
        created = ready.key(tenant_id)

        key = ready.json("keys", "get", "--tenant", tenant_id, created["key"]["id"])

        assert created["key"] == key
        assert "secret" not in key

    @pytest.mark.parametrize("action", ["revoke", "disable", "enable"])
    def test_status_actions_answer_the_wire_key(self, ready, tenant_id, action):
        created = ready.key(tenant_id)

        key = ready.json("keys", action, "--tenant", tenant_id, created["key"]["id"])

        assert KeyRead.model_validate(key).model_dump(mode="json") == key
        assert {"revoke": "revoked", "disable": "disabled", "enable": "active"}[action] == key[
            "status"
        ]

    def test_list_is_a_wire_page_with_filters(self, ready, tenant_id):
        first = ready.key(tenant_id, "--owner-id", "alice", name="one")
        second = ready.key(tenant_id, name="two")
        ready.ok("keys", "revoke", "--tenant", tenant_id, second["key"]["id"])

        page = ready.json("keys", "list", "--tenant", tenant_id)
        active = ready.json("keys", "list", "--tenant", tenant_id, "--status", "active")
        alices = ready.json("keys", "list", "--tenant", tenant_id, "--owner-id", "alice")

        assert Page[KeyRead].model_validate(page).model_dump(mode="json") == page
        assert [first["key"]["id"], second["key"]["id"]] == [k["id"] for k in page["items"]]
        assert [first["key"]["id"]] == [k["id"] for k in active["items"]]
        assert [first["key"]["id"]] == [k["id"] for k in alices["items"]]

    def test_list_prints_a_table_without_json(self, ready, tenant_id):
        created = ready.key(tenant_id)

        lines = ready.ok("keys", "list", "--tenant", tenant_id).stdout.splitlines()

        assert ["ID", "NAME", "START", "STATUS", "EXPIRES_AT", "OWNER_ID", "LAST_USED_AT"] == (
            lines[0].split()
        )
        assert [created["key"]["id"], "backend", created["key"]["start"], "active"] == lines[
            1
        ].split()[:4]

    def test_list_pages_follow_the_cursor(self, ready, tenant_id):
        ids = [ready.key(tenant_id, name=f"k{i}")["key"]["id"] for i in range(3)]

        first = ready.json("keys", "list", "--tenant", tenant_id, "--limit", "2")
        rest = ready.json(
            "keys", "list", "--tenant", tenant_id, "--limit", "2", "--cursor", first["next_cursor"]
        )
        more = ready.ok("keys", "list", "--tenant", tenant_id, "--limit", "2").stdout

        assert ids == [k["id"] for k in first["items"] + rest["items"]]
        assert f"more: pass --cursor {first['next_cursor']}" == more.splitlines()[-1]

    def test_delete_then_get_is_not_found(self, ready, tenant_id):
        created = ready.key(tenant_id)
        key_id = created["key"]["id"]

        deleted = ready.json("keys", "delete", "--tenant", tenant_id, key_id)
        result = ready.run("keys", "get", "--tenant", tenant_id, key_id)

        assert {"id": key_id, "deleted": True} == deleted
        assert (2, "error: key not found (key.not_found)") == (result.exit_code, _error(result))
        exit_code, answer = _verify(ready, created["secret"])
        assert (1, "NOT_FOUND") == (exit_code, answer.code)

        key_id = ready.key(tenant_id)["key"]["id"]

        result = ready.ok("keys", "delete", "--tenant", tenant_id, key_id)

        assert f"deleted {key_id}\n" == result.stdout


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--name", "x" * 256], "at most 255 characters"),
            (["--name", "k", "--meta", "{nope"], "not valid JSON"),
            (["--name", "k", "--meta", "[1, 2]"], "must be a JSON object"),
            (["--name", "k", "--meta", '{"a": NaN}'], "NaN is not valid JSON"),
            (["--name", "k", "--meta", '{"a":' * 9 + "1" + "}" * 9], "levels deep"),
            (["--name", "k", "--meta", '{"a": "' + "x" * 17000 + '"}'], "bytes"),
            (["--name", "k", "--expires-at", "2030-01-01T00:00:00"], "time zone"),
            (["--name", "k", "--expires-at", "tomorrow"], "not an ISO 8601"),
            (["--name", "k", "--owner-id", "x" * 256], "1 to 255"),
            (["--name", "k", "--permission", ""], "1 to 255"),
        ],
        ids=[
            "name-too-long",
            "meta-not-json",
            "meta-not-object",
            "meta-nan",
            "meta-too-deep",
            "meta-too-big",
            "naive-expiry",
            "bad-expiry",
            "owner-too-long",
            "empty-permission",
        ],
    )
    def test_create_usage_errors(self, ready, tenant_id, args, message):
        result = ready.run("keys", "create", "--tenant", tenant_id, *args)

        assert 2 == result.exit_code
        assert message in result.stderr
        assert "" == result.stdout
        assert "Traceback" not in result.output

    def test_unknown_tenant_is_a_clean_error(self, ready):
        result = ready.run("keys", "create", "--tenant", "ten_unknown", "--name", "k", "--json")

        assert (2, "", "error: tenant not found (tenant.not_found)") == (
            result.exit_code,
            result.stdout,
            _error(result),
        )

    def test_past_expiry_is_refused_by_the_service(self, ready, tenant_id):
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()

        result = ready.run(
            "keys", "create", "--tenant", tenant_id, "--name", "k", "--expires-at", past
        )

        assert 2 == result.exit_code
        assert "error: expires_at must be in the future (invalid_input)" == _error(result)

    @pytest.mark.parametrize("action", ["enable", "disable", "rotate"])
    def test_a_revoked_key_stays_revoked(self, ready, tenant_id, action):
        key_id = ready.key(tenant_id)["key"]["id"]
        ready.ok("keys", "revoke", "--tenant", tenant_id, key_id)

        result = ready.run("keys", action, "--tenant", tenant_id, key_id)

        assert 2 == result.exit_code
        assert "(key.revoked)" in result.stderr

    @pytest.mark.parametrize("command", ["get", "revoke", "disable", "enable", "rotate", "delete"])
    def test_unknown_key_is_not_found(self, ready, tenant_id, command):
        result = ready.run("keys", command, "--tenant", tenant_id, "key_unknown")

        assert (2, "error: key not found (key.not_found)") == (result.exit_code, _error(result))

    def test_grace_beyond_31_days_is_a_usage_error(self, ready, tenant_id):
        key_id = ready.key(tenant_id)["key"]["id"]

        result = ready.run(
            "keys", "rotate", "--tenant", tenant_id, key_id, "--grace-seconds", "2678401"
        )

        assert 2 == result.exit_code
        assert "--grace-seconds" in result.stderr


class TestSecrecy:
    def test_no_secret_reaches_stderr_through_a_whole_lifecycle(self, ready, tenant_id):
        created = ready.key(tenant_id)
        key_id = created["key"]["id"]
        ready.ok("keys", "verify", created["secret"])
        rotated = ready.json("keys", "rotate", "--tenant", tenant_id, key_id)
        ready.secrets.append(rotated["secret"])
        ready.run("keys", "verify", created["secret"])
        ready.ok("keys", "revoke", "--tenant", tenant_id, key_id)
        ready.run("keys", "verify", rotated["secret"])

        assert any('"key.created"' in e for e in ready.stderrs)  # INFO logs were written
        assert [] == ready.leaked()
