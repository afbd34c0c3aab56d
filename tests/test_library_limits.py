"""The library's verify facts, limits, credits, standalone rate limit and the guard's statuses."""

import httpx
import pytest
from fastapi import Depends, FastAPI

from keyrack import KeyGuard, Keyrack, Outcome
from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import InsufficientCredits, PermissionQuerySyntax
from keyrack.guard import install_problem_handler

pytestmark = pytest.mark.anyio


async def test_verify_with_facts_and_limits(settings):
    async with await Keyrack.open(settings) as kr:
        tenant = await kr.create_tenant("Acme")
        key, secret = await kr.create_key(
            tenant.id,
            "backend",
            permissions=["chat.write"],
            ip_allowlist=["10.0.0.0/8"],
            rate_limits=[RateLimit("requests", 4, 60_000)],
            credits=Credits(10),
            budget=Budget(100, BudgetPeriod.DAY),
            max_concurrency=5,
        )
        assert Outcome.FORBIDDEN == (await kr.verify(secret, ip="1.1.1.1")).outcome
        result = await kr.verify(secret, ip="10.0.0.1", permissions="chat.write", cost=3, spend=40)
        assert Outcome.VALID == result.outcome
        assert result.limits is not None
        assert result.limits.credits is not None
        assert 7 == result.limits.credits.remaining
        assert result.limits.lease_id is not None
        assert await kr.release_lease(result.limits.lease_id) is True
        with pytest.raises(PermissionQuerySyntax):
            await kr.verify(secret, permissions="chat.write AND")
        assert 7 == (await kr.credits(tenant.id, key.id)).remaining
        assert (
            17 == (await kr.change_credits(tenant.id, key.id, op="increment", amount=10)).remaining
        )
        with pytest.raises(InsufficientCredits):
            await kr.change_credits(tenant.id, key.id, op="decrement", amount=18)
        limited = await kr.verify(secret, ip="10.0.0.1")
        assert Outcome.VALID == limited.outcome
        assert Outcome.RATE_LIMITED == (await kr.verify(secret, ip="10.0.0.1")).outcome


async def test_standalone_rate_limit(settings):
    async with await Keyrack.open(settings) as kr:
        answers = [
            (await kr.ratelimit("chat", "user_1", limit=1, window_seconds=60)).success
            for _ in range(2)
        ]
        assert [True, False] == answers


async def test_guard_passes_request_facts_and_maps_outcomes_to_statuses(settings):
    kr = await Keyrack.open(settings)
    tenant = await kr.create_tenant("Acme")
    _, limited = await kr.create_key(tenant.id, "a", rate_limits=[RateLimit("r", 1, 60_000)])
    _, blocked = await kr.create_key(tenant.id, "b", blocked_endpoints=["GET /chat"])
    app = FastAPI()
    app.state.keyrack = kr
    install_problem_handler(app)

    @app.get("/chat", dependencies=[Depends(KeyGuard())])
    async def chat() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/admin", dependencies=[Depends(KeyGuard(permissions="admin"))])
    async def admin() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://svc") as client:
            auth = {"Authorization": f"Bearer {limited}"}
            assert 200 == (await client.get("/chat", headers=auth)).status_code
            refused = await client.get("/chat", headers=auth)
            assert (429, "RATE_LIMITED") == (refused.status_code, refused.json()["outcome"])
            forbidden = await client.get("/chat", headers={"X-API-Key": blocked})
            assert (403, "FORBIDDEN") == (forbidden.status_code, forbidden.json()["outcome"])
            no_perm = await client.get("/admin", headers={"X-API-Key": blocked})
            assert 403 == no_perm.status_code
    finally:
        await kr.close()
