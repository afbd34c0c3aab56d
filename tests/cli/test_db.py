from alembic.script import ScriptDirectory

from keyrack.store.migrate import alembic_config

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


class TestUpgrade:
    def test_json_names_the_revision_reached(self, keyrack):
        assert {"revision": HEAD} == keyrack.json("db", "upgrade")

    def test_needs_no_secrets(self, keyrack):
        keyrack.ok("db", "upgrade")

        assert not keyrack.secrets_file.exists()

    def test_prints_the_revision_without_json(self, keyrack):
        assert f"revision: {HEAD}\n" == keyrack.ok("db", "upgrade").stdout


class TestCurrent:
    def test_is_null_before_the_first_migration(self, keyrack, tmp_path):
        fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"

        current = keyrack.json("db", "current", KEYRACK_DATABASE_URL=fresh)
        advice = keyrack.ok("db", "current", KEYRACK_DATABASE_URL=fresh).stdout

        assert {"revision": None, "head": HEAD} == current
        assert "run 'keyrack db upgrade'" in advice

    def test_is_the_head_after_upgrade(self, keyrack):
        keyrack.ok("db", "upgrade")

        current = keyrack.json("db", "current")
        lines = keyrack.ok("db", "current").stdout.splitlines()

        assert {"revision": HEAD, "head": HEAD} == current
        assert [f"revision: {HEAD}", f"head:     {HEAD}"] == lines
