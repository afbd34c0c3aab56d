"""A ``keyrack`` command runner on the parametrized database, in a temporary directory."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result

from keyrack.cli.main import cli


@dataclass
class Cli:
    """Runs ``keyrack`` with a private environment; ``secrets`` collects every secret printed."""

    env: dict[str, str | None]
    secrets_file: Path
    database_url: str
    runner: CliRunner = field(default_factory=CliRunner)
    secrets: list[str] = field(default_factory=list)
    stderrs: list[str] = field(default_factory=list)

    def run(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self.runner.invoke(
            cli, list(args), env={**self.env, **env}, input=input, catch_exceptions=False
        )
        self.stderrs.append(result.stderr)
        return result

    def leaked(self) -> list[int]:
        """Indexes of the printed secrets that appear in any stderr (never the secrets)."""
        return [
            i for i, secret in enumerate(self.secrets) if any(secret in e for e in self.stderrs)
        ]

    def ok(self, *args: str, **env: str | None) -> Result:
        result = self.run(*args, **env)
        assert 0 == result.exit_code, result.stderr
        return result

    def json(self, *args: str, **env: str | None) -> Any:
        return json.loads(self.ok(*args, "--json", **env).stdout)

    def init(self) -> str:
        root_key: str | None = self.json("init")["root_key"]
        assert root_key is not None
        self.secrets.append(root_key)
        return root_key

    def tenant(self, name: str = "Acme", *args: str) -> dict[str, Any]:
        tenant: dict[str, Any] = self.json("tenants", "create", name, *args)
        return tenant

    def key(self, tenant_id: str, *args: str, name: str = "backend") -> dict[str, Any]:
        created: dict[str, Any] = self.json(
            "keys", "create", "--tenant", tenant_id, "--name", name, *args
        )
        self.secrets.append(created["secret"])
        return created


@pytest.fixture(autouse=True)
def _restore_logging():
    """``keyrack.logging.configure`` replaces the root handlers: undo it after each test."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def keyrack(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """The CLI on an empty database, run from a temporary working directory.

    After the test, no secret the CLI printed may appear in anything it wrote to stderr.
    """
    monkeypatch.chdir(tmp_path)
    secrets_file = tmp_path / "keyrack.secrets"
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("KEYRACK_")}
    env |= {
        "KEYRACK_DATABASE_URL": database_url,
        "KEYRACK_SECRETS_FILE": str(secrets_file),
        # INFO so every log line a command writes reaches stderr, where secrecy is checked.
        "KEYRACK_LOG_LEVEL": "INFO",
    }
    runner = Cli(env=env, secrets_file=secrets_file, database_url=database_url)
    yield runner
    assert [] == runner.leaked()


@pytest.fixture
def ready(keyrack: Cli) -> Cli:
    """The CLI after ``keyrack init``."""
    keyrack.init()
    return keyrack
