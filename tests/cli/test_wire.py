"""The CLI's ``--json`` and the HTTP API answer the same object in the same bytes' meaning."""

import asyncio
import os
from typing import Any

import httpx
import pytest

from keyrack.api.app import create_app
from keyrack.config import Settings
from keyrack.runtime import open_runtime
from tests.cli.conftest import Cli


async def _api_get_all(
    cli: Cli, root_key: str, requests: list[tuple[str, str, dict[str, str] | None]]
) -> list[Any]:
    settings = Settings(
        _env_file=None,
        database_url=cli.database_url,
        secrets_file=cli.secrets_file,
    )
    runtime = await open_runtime(settings)
    try:
        app = create_app(settings, runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {root_key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://keyrack.test") as client:
            answers = []
            for method, path, body in requests:
                response = await client.request(method, path, json=body, headers=headers)
                assert 200 == response.status_code, response.text
                answers.append(response.json())
            return answers
    finally:
        await runtime.close()


@pytest.fixture
def env_without_keyrack(monkeypatch):
    """The API's ``Settings`` must not pick up this process's own ``KEYRACK_*``."""
    for name in [n for n in os.environ if n.startswith("KEYRACK_")]:
        monkeypatch.delenv(name)


class TestCliAndApiAgree:
    def test_tenants_keys_and_verify(self, keyrack, env_without_keyrack):
        root_key = keyrack.init()
        tenant = keyrack.tenant("Acme")
        created = keyrack.key(
            tenant["id"], "--meta", '{"plan": "pro"}', "--expires-at", "2099-01-01T00:00:00Z"
        )
        key_id = created["key"]["id"]

        cli_verify = keyrack.json("keys", "verify", created["secret"])
        cli_answers = [
            keyrack.json("tenants", "list"),
            keyrack.json("keys", "get", "--tenant", tenant["id"], key_id),
            keyrack.json("keys", "list", "--tenant", tenant["id"]),
            cli_verify,
        ]
        # The API verifies last, so both read the last_used_at the CLI's verify wrote.
        api_answers = asyncio.run(
            _api_get_all(
                keyrack,
                root_key,
                [
                    ("GET", "/v1/tenants", None),
                    ("GET", f"/v1/tenants/{tenant['id']}/keys/{key_id}", None),
                    ("GET", f"/v1/tenants/{tenant['id']}/keys", None),
                    ("POST", "/v1/verify", {"key": created["secret"]}),
                ],
            )
        )

        assert cli_answers == api_answers
        assert cli_answers[1]["last_used_at"] is not None
