"""``serve`` hands its resolved settings to the server processes as ``KEYRACK_*`` variables."""

import os
from pathlib import Path

from keyrack.cli.server import child_environment
from keyrack.config import Settings

SECRET = "1:" + "A" * 44


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


class TestChildEnvironment:
    def test_round_trips_every_setting_but_the_secrets(self, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)
        original = _settings(
            host="localhost",
            port=9000,
            database_url="sqlite:///./k.db",
            secrets_file=Path("k.secrets"),
            cache_ttl_seconds=12.5,
            log_format="console",
        )
        for name in [n for n in os.environ if n.startswith("KEYRACK_")]:
            monkeypatch.delenv(name)
        for name, value in child_environment(original).items():
            monkeypatch.setenv(name, value)

        seen = Settings()

        assert (
            original.model_copy(update={"secrets_file": tmp_path / "k.secrets"}).model_dump()
            == seen.model_dump()
        )

    def test_makes_the_secrets_file_absolute(self, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)

        env = child_environment(_settings(secrets_file=Path("k.secrets")))

        assert str(tmp_path / "k.secrets") == env["KEYRACK_SECRETS_FILE"]

    def test_never_copies_a_secret(self):
        env = child_environment(
            _settings(peppers=SECRET, master_keys=SECRET, metrics_token="token")
        )

        assert {"KEYRACK_PEPPERS", "KEYRACK_MASTER_KEYS", "KEYRACK_METRICS_TOKEN"}.isdisjoint(env)
        assert not any(SECRET in value or "token" == value for value in env.values())
