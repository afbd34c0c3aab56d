"""The embedded library and the route guard, as a Python service would use them."""

from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from keyrack import KeyGuard, Keyrack, Outcome, VerifyResult
from keyrack.guard import install_problem_handler

pytestmark = pytest.mark.anyio

ApiKeyDep = Annotated[VerifyResult, Depends(KeyGuard())]


async def test_open_create_verify_revoke(settings):
    async with await Keyrack.open(settings) as kr:
        tenant = await kr.create_tenant("Acme")
        await kr.create_role(tenant.id, "reader")
        key, secret = await kr.create_key(
            tenant.id, "backend", meta={"plan": "pro"}, permissions=["chat.write"], roles=["reader"]
        )
        result = await kr.verify(secret)
        assert result.record is not None
        assert (Outcome.VALID, key.id, {"plan": "pro"}) == (
            result.outcome,
            result.record.key_id,
            result.record.meta,
        )
        other = await kr.create_tenant("Other")
        assert Outcome.NOT_FOUND == (await kr.verify(secret, tenant_id=other.id)).outcome
        await kr.revoke_key(tenant.id, key.id)
        assert Outcome.REVOKED == (await kr.verify(secret)).outcome


async def test_guard_protects_a_fastapi_route(settings):
    kr = await Keyrack.open(settings)
    tenant = await kr.create_tenant("Acme")
    key, secret = await kr.create_key(tenant.id, "backend")

    @asynccontextmanager
    async def lifespan(app):
        app.state.keyrack = kr
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.keyrack = kr
    install_problem_handler(app)

    @app.get("/chat")
    async def chat(result: ApiKeyDep) -> dict[str, str]:
        assert result.record is not None
        return {"key_id": result.record.key_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        ok = await client.get("/chat", headers={"Authorization": f"Bearer {secret}"})
        assert (200, {"key_id": key.id}) == (ok.status_code, ok.json())
        via_header = await client.get("/chat", headers={"X-API-Key": secret})
        assert 200 == via_header.status_code
        missing = await client.get("/chat")
        assert 401 == missing.status_code
        assert "application/problem+json" == missing.headers["content-type"]
        assert ("api_key.rejected", "NOT_FOUND") == (
            missing.json()["code"],
            missing.json()["outcome"],
        )
        await kr.revoke_key(tenant.id, key.id)
        revoked = await client.get("/chat", headers={"Authorization": f"Bearer {secret}"})
        assert (401, "REVOKED") == (revoked.status_code, revoked.json()["outcome"])
        assert secret not in revoked.text
    await kr.close()
