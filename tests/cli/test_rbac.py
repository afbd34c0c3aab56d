from typing import Any

import pytest
from click.testing import Result

from keyrack.schemas.common import Page
from keyrack.schemas.rbac import PermissionRead, RoleRead
from tests.cli.conftest import Cli


@pytest.fixture
def tenant_id(ready: Cli) -> str:
    tenant_id: str = ready.tenant()["id"]
    return tenant_id


def _error(result: Result) -> str:
    """The error line: the last line on stderr (INFO log lines may come before it)."""
    last: str = result.stderr.splitlines()[-1]
    return last


def _fields(result: Result) -> dict[str, str]:
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in result.stdout.splitlines())}


class TestPermissions:
    def test_create_json_is_the_wire_permission(self, ready, tenant_id):
        created = ready.json(
            "permissions", "create", "--tenant", tenant_id, "documents.*", "--description", "docs"
        )

        assert PermissionRead.model_validate(created).model_dump(mode="json") == created
        assert (tenant_id, "documents.*", "docs") == (
            created["tenant_id"],
            created["slug"],
            created["description"],
        )

    def test_create_prints_fields_without_json(self, ready, tenant_id):
        result = ready.ok("permissions", "create", "--tenant", tenant_id, "chat.write")

        fields = _fields(result)
        assert ("chat.write", "-") == (fields["slug"], fields["description"])
        assert fields["id"].startswith("perm_")

    @pytest.mark.parametrize(
        "slug",
        ["Chat", "a b", "*.a", "and", "a" * 256],
        ids=["upper", "space", "star", "kw", "long"],
    )
    def test_bad_slug_is_a_usage_error(self, ready, tenant_id, slug):
        result = ready.run("permissions", "create", "--tenant", tenant_id, slug)

        assert 2 == result.exit_code
        assert "not a permission name" in result.stderr
        assert [] == ready.json("permissions", "list", "--tenant", tenant_id)["items"]

    def test_duplicate_is_refused_with_its_code(self, ready, tenant_id):
        ready.ok("permissions", "create", "--tenant", tenant_id, "a")

        result = ready.run("permissions", "create", "--tenant", tenant_id, "a")

        assert 2 == result.exit_code
        assert _error(result).endswith("(permission.duplicate)")

    def test_list_get_and_delete(self, ready, tenant_id):
        first = ready.json("permissions", "create", "--tenant", tenant_id, "a")
        second = ready.json("permissions", "create", "--tenant", tenant_id, "b")

        page = ready.json("permissions", "list", "--tenant", tenant_id)
        one = ready.json("permissions", "list", "--tenant", tenant_id, "--limit", "1")
        got = ready.json("permissions", "get", "--tenant", tenant_id, first["id"])
        deleted = ready.json("permissions", "delete", "--tenant", tenant_id, first["id"])
        missing = ready.run("permissions", "get", "--tenant", tenant_id, first["id"])

        assert Page[PermissionRead].model_validate(page).model_dump(mode="json") == page
        assert [first, second] == page["items"]
        assert ([first], first["id"]) == (one["items"], one["next_cursor"])
        assert first == got
        assert {"id": first["id"], "deleted": True} == deleted
        assert 2 == missing.exit_code
        assert _error(missing).endswith("(permission.not_found)")

    def test_list_and_delete_without_json(self, ready, tenant_id):
        empty = ready.ok("permissions", "list", "--tenant", tenant_id)
        created = ready.json("permissions", "create", "--tenant", tenant_id, "chat.write")
        ready.json("permissions", "create", "--tenant", tenant_id, "chat.read")
        table = ready.ok("permissions", "list", "--tenant", tenant_id, "--limit", "1")
        shown = ready.ok("permissions", "get", "--tenant", tenant_id, created["id"])
        deleted = ready.ok("permissions", "delete", "--tenant", tenant_id, created["id"])

        assert "no permissions" == empty.stdout.strip()
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["ID", "SLUG", "DESCRIPTION", "CREATED_AT"]
        assert lines[1].startswith(created["id"])
        assert lines[-1].startswith("more: pass --cursor ")
        assert "chat.write" == _fields(shown)["slug"]
        assert f"deleted {created['id']}" == deleted.stdout.strip()

    def test_delete_takes_it_off_keys(self, ready, tenant_id):
        key = ready.key(tenant_id, "--permission", "chat.write", "--permission", "chat.read")
        [slug] = [
            p
            for p in ready.json("permissions", "list", "--tenant", tenant_id)["items"]
            if p["slug"] == "chat.write"
        ]

        ready.ok("permissions", "delete", "--tenant", tenant_id, slug["id"])

        got = ready.json("keys", "get", "--tenant", tenant_id, key["key"]["id"])
        assert ["chat.read"] == got["permissions"]

    def test_unknown_tenant_is_refused(self, ready):
        result = ready.run("permissions", "list", "--tenant", "ten_nope")

        assert 2 == result.exit_code
        assert _error(result).endswith("(tenant.not_found)")


class TestRoles:
    def _role(self, cli: Cli, tenant_id: str, name: str = "writer", *args: str) -> dict[str, Any]:
        role: dict[str, Any] = cli.json("roles", "create", "--tenant", tenant_id, name, *args)
        return role

    def test_create_json_is_the_wire_role_and_creates_its_permissions(self, ready, tenant_id):
        role = self._role(
            ready,
            tenant_id,
            "writer",
            "--permission",
            "chat.write",
            "--permission",
            "docs.*",
            "--description",
            "writes",
        )

        assert RoleRead.model_validate(role).model_dump(mode="json") == role
        assert ("writer", ["chat.write", "docs.*"], "writes") == (
            role["name"],
            role["permissions"],
            role["description"],
        )
        slugs = ready.json("permissions", "list", "--tenant", tenant_id)["items"]
        assert ["chat.write", "docs.*"] == sorted(p["slug"] for p in slugs)

    def test_create_prints_fields_without_json(self, ready, tenant_id):
        result = ready.ok("roles", "create", "--tenant", tenant_id, "r", "--permission", "a")

        fields = _fields(result)
        assert ("r", "a") == (fields["name"], fields["permissions"])

    def test_bad_permission_or_name_is_a_usage_error(self, ready, tenant_id):
        bad_permission = ready.run(
            "roles", "create", "--tenant", tenant_id, "r", "--permission", "Bad"
        )
        bad_name = ready.run("roles", "create", "--tenant", tenant_id, "r" * 256)

        assert (2, 2) == (bad_permission.exit_code, bad_name.exit_code)
        assert [] == ready.json("roles", "list", "--tenant", tenant_id)["items"]

    def test_duplicate_is_refused_with_its_code(self, ready, tenant_id):
        self._role(ready, tenant_id, "r")

        result = ready.run("roles", "create", "--tenant", tenant_id, "r")

        assert 2 == result.exit_code
        assert _error(result).endswith("(role.duplicate)")

    def test_update_changes_the_given_fields(self, ready, tenant_id):
        role = self._role(ready, tenant_id, "r", "--permission", "a", "--description", "d")
        role_id = role["id"]

        renamed = ready.json("roles", "update", "--tenant", tenant_id, role_id, "--name", "s")
        replaced = ready.json(
            "roles",
            "update",
            "--tenant",
            tenant_id,
            role_id,
            "--permission",
            "b",
            "--permission",
            "c",
        )
        cleared = ready.json(
            "roles",
            "update",
            "--tenant",
            tenant_id,
            role_id,
            "--no-description",
            "--no-permissions",
        )
        described = ready.json(
            "roles", "update", "--tenant", tenant_id, role_id, "--description", "again"
        )

        assert ("s", ["a"], "d") == (
            renamed["name"],
            renamed["permissions"],
            renamed["description"],
        )
        assert ["b", "c"] == replaced["permissions"]
        assert ([], None) == (cleared["permissions"], cleared["description"])
        assert ("s", "again") == (described["name"], described["description"])
        assert described == ready.json("roles", "get", "--tenant", tenant_id, role_id)

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param([], id="nothing"),
            pytest.param(["--description", "d", "--no-description"], id="description-twice"),
            pytest.param(["--permission", "a", "--no-permissions"], id="permissions-twice"),
            pytest.param(["--permission", "A"], id="bad-permission"),
        ],
    )
    def test_update_usage_errors(self, ready, tenant_id, args):
        role = self._role(ready, tenant_id, "r", "--permission", "a")

        result = ready.run("roles", "update", "--tenant", tenant_id, role["id"], *args)

        assert 2 == result.exit_code
        assert role == ready.json("roles", "get", "--tenant", tenant_id, role["id"])

    def test_rename_and_delete_reach_the_keys(self, ready, tenant_id):
        role = self._role(ready, tenant_id, "writer", "--permission", "chat.write")
        key = ready.key(tenant_id, "--role", "writer")
        key_id = key["key"]["id"]

        ready.ok("roles", "update", "--tenant", tenant_id, role["id"], "--name", "editor")
        renamed = ready.json("keys", "get", "--tenant", tenant_id, key_id)
        deleted = ready.json("roles", "delete", "--tenant", tenant_id, role["id"])
        stripped = ready.json("keys", "get", "--tenant", tenant_id, key_id)

        assert ["editor"] == renamed["roles"]
        assert {"id": role["id"], "deleted": True} == deleted
        assert [] == stripped["roles"]

    def test_list_get_and_delete_without_json(self, ready, tenant_id):
        empty = ready.ok("roles", "list", "--tenant", tenant_id)
        role = self._role(ready, tenant_id, "r", "--permission", "a", "--permission", "b")
        self._role(ready, tenant_id, "s")
        page = ready.json("roles", "list", "--tenant", tenant_id, "--limit", "1")
        table = ready.ok("roles", "list", "--tenant", tenant_id)
        shown = ready.ok("roles", "get", "--tenant", tenant_id, role["id"])
        deleted = ready.ok("roles", "delete", "--tenant", tenant_id, role["id"])
        missing = ready.run("roles", "get", "--tenant", tenant_id, role["id"])

        assert "no roles" == empty.stdout.strip()
        assert ([role], role["id"]) == (page["items"], page["next_cursor"])
        lines = table.stdout.splitlines()
        assert ["ID", "NAME", "PERMISSIONS", "DESCRIPTION", "UPDATED_AT"] == lines[0].split()
        assert "a, b" in lines[1]
        assert "a, b" == _fields(shown)["permissions"]
        assert f"deleted {role['id']}" == deleted.stdout.strip()
        assert _error(missing).endswith("(role.not_found)")


@pytest.mark.parametrize(
    "args",
    [
        ["permissions"],
        ["permissions", "create"],
        ["permissions", "delete"],
        ["roles"],
        ["roles", "create"],
        ["roles", "update"],
    ],
    ids="-".join,
)
def test_every_command_has_help(keyrack, args):
    result = keyrack.ok(*args, "--help")

    assert result.stdout.startswith("Usage: ")
