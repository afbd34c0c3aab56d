"""Failures of the environment: one line on stderr, exit code 3, never a traceback or a secret."""

import base64
import sqlite3

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL


class TestEnvironmentErrors:
    def test_a_command_before_init_says_to_run_init(self, keyrack):
        result = keyrack.run("tenants", "list")

        assert 3 == result.exit_code
        assert "run 'keyrack init'" in result.stderr
        assert "Traceback" not in result.output

    def test_sqlite_file_in_a_missing_directory(self, keyrack, tmp_path):
        url = f"sqlite:///{tmp_path / 'missing' / 'keyrack.db'}"

        result = keyrack.run("init", KEYRACK_DATABASE_URL=url)

        assert 3 == result.exit_code
        assert "which does not exist (config.invalid)" in result.stderr
        assert not keyrack.secrets_file.exists()

    def test_unreachable_postgres_is_a_clean_error(self, keyrack):
        # Port 1 on localhost refuses at once: no server ever listens there.
        result = keyrack.run("db", "current", KEYRACK_DATABASE_URL="postgresql://u@127.0.0.1:1/x")

        assert 3 == result.exit_code
        assert "(backend.unavailable)" in result.stderr
        assert "Traceback" not in result.output

    def test_unsupported_database_url(self, keyrack):
        result = keyrack.run("db", "upgrade", KEYRACK_DATABASE_URL="mysql://u@host/db")

        assert 3 == result.exit_code
        assert "must be a SQLite or PostgreSQL URL" in result.stderr

    @pytest.mark.parametrize(
        ("variable", "value"),
        [("KEYRACK_PORT", "not-a-port"), ("KEYRACK_LOG_FORMAT", "xml")],
        ids=["port", "log-format"],
    )
    def test_invalid_setting_names_the_variable(self, keyrack, variable, value):
        result = keyrack.run("tenants", "list", **{variable: value})

        assert 3 == result.exit_code
        assert result.stderr.startswith(f"error: invalid settings: {variable}: ")
        assert value not in result.stderr

    def test_malformed_pepper_is_refused_without_echoing_it(self, keyrack):
        pepper = "1:" + base64.b64encode(b"short but secret").decode()
        master = "1:" + base64.b64encode(bytes(32)).decode()

        result = keyrack.run("init", KEYRACK_PEPPERS=pepper, KEYRACK_MASTER_KEYS=master)

        assert 3 == result.exit_code
        assert "shorter than 32 bytes (config.invalid)" in result.stderr
        assert pepper[2:] not in result.stderr


class TestLogging:
    def test_operator_commands_are_quiet_unless_a_level_is_set(self, ready):
        quiet = ready.run("tenants", "create", "Acme", KEYRACK_LOG_LEVEL=None)
        loud = ready.run("tenants", "create", "Beta")

        assert ("", 0) == (quiet.stderr, quiet.exit_code)
        assert '"tenant.created"' in loud.stderr

    def test_json_output_stays_pure_with_logs_on(self, ready):
        result = ready.ok("tenants", "create", "Acme", "--json")

        assert result.stdout.startswith("{")
        assert '"level": "info"' in result.stderr
        assert '"level"' not in result.stdout


class TestHelp:
    @pytest.mark.parametrize(
        "args",
        [[], ["keys"], ["keys", "create"], ["tenants"], ["db"], ["serve"], ["init"]],
        ids=["root", "keys", "keys-create", "tenants", "db", "serve", "init"],
    )
    def test_every_command_has_help(self, keyrack, args):
        result = keyrack.ok(*args, "--help")

        assert result.stdout.startswith("Usage: ")


class TestFilesAndMigrations:
    def test_secrets_file_in_a_missing_directory(self, keyrack, tmp_path):
        path = tmp_path / "missing" / "keyrack.secrets"

        result = keyrack.run("init", KEYRACK_SECRETS_FILE=str(path))

        assert 3 == result.exit_code
        assert f"cannot write the secrets file {path}" in result.stderr

    def test_unreadable_secrets_path_names_the_file(self, keyrack, tmp_path):
        result = keyrack.run("tenants", "list", KEYRACK_SECRETS_FILE=str(tmp_path))

        assert 3 == result.exit_code
        assert f"error: cannot use {tmp_path}: Is a directory (config.invalid)" in result.stderr

    def test_unknown_schema_revision_is_a_clean_error(self, keyrack, tmp_path):
        path = tmp_path / "future.db"
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            connection.execute("INSERT INTO alembic_version VALUES ('9999')")
        connection.close()

        result = keyrack.run("db", "upgrade", KEYRACK_DATABASE_URL=f"sqlite:///{path}")

        assert 3 == result.exit_code
        assert result.stderr.splitlines()[-1].startswith("error: migration failed: ")
        assert "9999" in result.stderr

    def test_missing_postgres_database_quotes_the_server(self, keyrack):
        if PG_URL is None:
            pytest.skip("KEYRACK_TEST_POSTGRES_URL is not set")
        url = make_url(PG_URL).set(database="keyrack_no_such_db")

        result = keyrack.run(
            "db", "current", KEYRACK_DATABASE_URL=url.render_as_string(hide_password=False)
        )

        assert 3 == result.exit_code
        assert 'database "keyrack_no_such_db" does not exist (backend.unavailable)' in (
            result.stderr
        )
