import pytest

from keyrack.schemas.common import Page
from keyrack.schemas.tenants import TenantRead


class TestCreate:
    def test_json_is_the_wire_tenant(self, ready):
        tenant = ready.json("tenants", "create", "  Acme Corp  ", "--key-prefix", "sk_live")

        assert TenantRead.model_validate(tenant).model_dump(mode="json") == tenant
        assert ("Acme Corp", "acme-corp", "sk_live") == (
            tenant["name"],
            tenant["slug"],
            tenant["key_prefix"],
        )

    def test_prints_aligned_fields_without_json(self, ready):
        result = ready.ok("tenants", "create", "Acme", "--slug", "acme-eu")

        lines = result.stdout.splitlines()
        assert ["id", "name", "slug", "key_prefix", "created_at", "updated_at"] == [
            line.split(":", 1)[0] for line in lines
        ]
        value_columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
        assert 1 == len(value_columns)
        assert "slug:       acme-eu" in lines


class TestList:
    def test_json_is_a_wire_page(self, ready):
        created = [ready.tenant(name) for name in ("One", "Two", "Three")]

        page = ready.json("tenants", "list")

        assert Page[TenantRead].model_validate(page).model_dump(mode="json") == page
        assert created == page["items"]
        assert page["next_cursor"] is None

    def test_pages_follow_the_cursor(self, ready):
        created = [ready.tenant(name)["id"] for name in ("One", "Two", "Three")]

        first = ready.json("tenants", "list", "--limit", "2")
        second = ready.json("tenants", "list", "--limit", "2", "--cursor", first["next_cursor"])

        assert created == [t["id"] for t in first["items"] + second["items"]]
        assert second["next_cursor"] is None

    def test_prints_a_table_without_json(self, ready):
        tenant = ready.tenant("Acme")

        lines = ready.ok("tenants", "list", "--limit", "1").stdout.splitlines()

        assert ["ID", "NAME", "SLUG", "KEY_PREFIX", "CREATED_AT"] == lines[0].split()
        assert [tenant["id"], "Acme", "acme", "kr"] == lines[1].split()[:4]
        assert 2 == len(lines)

    def test_says_so_when_there_are_none(self, ready):
        assert "no tenants\n" == ready.ok("tenants", "list").stdout


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["x" * 256], "at most 255 characters"),
            (["   "], "must not be empty"),
            (["Acme", "--slug", "-bad-"], "slug must be"),
        ],
        ids=["name-too-long", "blank-name", "bad-slug"],
    )
    def test_is_a_usage_error(self, ready, args, message):
        result = ready.run("tenants", "create", *args)

        assert 2 == result.exit_code
        assert message in result.stderr
        assert "" == result.stdout

    @pytest.mark.parametrize(
        ("args", "code"),
        [
            (["Acme", "--key-prefix", "krroot"], "invalid_input"),
            (["Acme", "--key-prefix", "Bad!"], "invalid_input"),
            (["!!!"], "invalid_input"),
        ],
        ids=["reserved-prefix", "bad-prefix", "no-slug-derivable"],
    )
    def test_refused_by_the_service_is_a_clean_error(self, ready, args, code):
        result = ready.run("tenants", "create", *args)

        assert 2 == result.exit_code
        error = result.stderr.splitlines()[-1]
        assert error.startswith("error: ")
        assert error.endswith(f"({code})")
        assert "Traceback" not in result.output

    def test_duplicate_slug_is_a_conflict(self, ready):
        ready.tenant("Acme")

        result = ready.run("tenants", "create", "Acme")

        assert 2 == result.exit_code
        assert "(tenant.duplicate_slug)" in result.stderr

    @pytest.mark.parametrize(
        ("args", "exit_code", "message"),
        [
            (["--limit", "0"], 2, "--limit"),
            (["--limit", "101"], 2, "--limit"),
            (["--cursor", "nope"], 2, "(invalid_input)"),
        ],
        ids=["limit-zero", "limit-too-big", "bad-cursor"],
    )
    def test_bad_page_arguments(self, ready, args, exit_code, message):
        result = ready.run("tenants", "list", *args)

        assert exit_code == result.exit_code
        assert message in result.stderr
