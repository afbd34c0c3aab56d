"""An app over the parametrized database, an HTTP client, and a bootstrap root key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from keyrack.api.app import create_app
from keyrack.config import Settings
from keyrack.runtime import Runtime


@dataclass
class Api:
    """A client plus the bootstrap root key, with shortcuts for common set-up."""

    client: httpx.AsyncClient
    root_key: str
    runtime: Runtime

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.root_key}"}

    async def tenant(self, name: str = "Acme", **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/tenants", json={"name": name, **extra}, headers=self.auth()
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def key(self, tenant_id: str, **body: Any) -> tuple[dict[str, Any], str]:
        body.setdefault("name", "test key")
        response = await self.client.post(
            f"/v1/tenants/{tenant_id}/keys", json=body, headers=self.auth()
        )
        assert response.status_code == 201, response.text
        data = response.json()
        return data["key"], data["secret"]

    async def service_account(
        self, tenant_id: str | None, permissions: list[str], name: str = "svc"
    ) -> str:
        path = (
            "/v1/service-accounts"
            if tenant_id is None
            else f"/v1/tenants/{tenant_id}/service-accounts"
        )
        response = await self.client.post(
            path, json={"name": name, "permissions": permissions}, headers=self.auth()
        )
        assert response.status_code == 201, response.text
        return response.json()["root_key"]

    async def verify(
        self, key: object, root_key: str | None = None, **facts: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/verify", json={"key": key, **facts}, headers=self.auth(root_key)
        )


@pytest.fixture
async def api(runtime: Runtime, settings: Settings) -> AsyncIterator[Api]:
    root_key = await runtime.accounts.bootstrap()
    assert root_key is not None
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keyrack.test") as client:
        yield Api(client=client, root_key=root_key, runtime=runtime)
