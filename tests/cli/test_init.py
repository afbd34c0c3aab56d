import base64
import json
import secrets
import stat

from keyrack.domain import keys as keyformat


def _versioned() -> str:
    return f"1:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class TestInit:
    def test_writes_a_private_secrets_file_and_prints_the_root_key(self, keyrack):
        result = keyrack.ok("init")

        assert 0o600 == stat.S_IMODE(keyrack.secrets_file.stat().st_mode)
        lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
        keyrack.secrets.append(lines["root_key"])
        assert keyformat.is_root_key(lines["root_key"])
        assert keyformat.is_well_formed(lines["root_key"])
        assert "migrated to revision" in lines["database"]
        assert "generated" in result.stderr
        assert "secret store" in result.stderr
        assert "shown only once" in result.stderr

    def test_json_prints_the_root_key_then_null_on_the_next_run(self, keyrack):
        first = keyrack.json("init")
        keyrack.secrets.append(first["root_key"])
        second = keyrack.json("init")

        assert ["root_key"] == list(first)
        assert keyformat.is_root_key(first["root_key"])
        assert {"root_key": None} == second

    def test_second_run_keeps_the_secrets_file(self, keyrack):
        keyrack.init()
        before = keyrack.secrets_file.read_bytes()

        result = keyrack.ok("init")

        assert before == keyrack.secrets_file.read_bytes()
        assert "generated" not in result.stderr
        assert "already exists" in result.stderr
        assert "root_key" not in result.stdout

    def test_configured_peppers_need_no_secrets_file(self, keyrack):
        env = {"KEYRACK_PEPPERS": _versioned(), "KEYRACK_MASTER_KEYS": _versioned()}

        root_key = json.loads(keyrack.ok("init", "--json", **env).stdout)["root_key"]
        keyrack.secrets.append(root_key)

        assert keyformat.is_root_key(root_key)
        assert not keyrack.secrets_file.exists()

    def test_only_one_of_peppers_and_master_keys_is_refused(self, keyrack):
        result = keyrack.run("init", KEYRACK_PEPPERS=_versioned())

        assert 3 == result.exit_code
        assert "set both KEYRACK_PEPPERS and KEYRACK_MASTER_KEYS" in result.stderr
        assert not keyrack.secrets_file.exists()


class TestInitGuard:
    """New peppers would orphan every digest already stored: init refuses instead."""

    def test_refuses_when_the_database_has_keys_but_the_secrets_file_is_gone(self, keyrack):
        keyrack.init()
        keyrack.key(keyrack.tenant()["id"])
        keyrack.secrets_file.unlink()

        result = keyrack.run("init")

        assert 3 == result.exit_code
        assert "KEYRACK_SECRETS_FILE" in result.stderr
        assert "(config.invalid)" in result.stderr
        assert "Traceback" not in result.output
        assert not keyrack.secrets_file.exists()

    def test_refuses_when_only_a_root_key_exists(self, keyrack):
        keyrack.init()
        keyrack.secrets_file.unlink()

        result = keyrack.run("init", "--json")

        assert 3 == result.exit_code
        assert "" == result.stdout
        assert not keyrack.secrets_file.exists()

    def test_serve_refuses_too(self, keyrack):
        keyrack.init()
        keyrack.secrets_file.unlink()

        result = keyrack.run("serve", "--port", "1")

        assert 3 == result.exit_code
        assert "original secrets file" in result.stderr
        assert not keyrack.secrets_file.exists()
