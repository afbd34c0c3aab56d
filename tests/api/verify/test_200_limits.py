"""RATE_LIMITED, CONCURRENCY_LIMITED, USAGE_EXCEEDED, BUDGET_EXCEEDED through the HTTP API."""

import pytest

pytestmark = pytest.mark.anyio


class TestRateLimited:
    async def test_admits_the_limit_then_refuses_with_state(self, api, clock):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"], rate_limits=[{"name": "requests", "limit": 3, "window_seconds": 60}]
        )
        remaining = [
            (await api.verify(secret)).json()["ratelimits"][0]["remaining"] for _ in range(3)
        ]
        assert [2, 1, 0] == remaining
        body = (await api.verify(secret)).json()
        assert ("RATE_LIMITED", False) == (body["code"], body["valid"])
        [limit] = body["ratelimits"]
        assert ("requests", 3, 0) == (limit["name"], limit["limit"], limit["remaining"])
        assert limit["reset_at"].endswith("Z")
        clock.advance(64)
        assert "VALID" == (await api.verify(secret)).json()["code"]

    async def test_several_limits_are_all_or_nothing(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"],
            rate_limits=[
                {"name": "requests", "limit": 10, "window_seconds": 60},
                {"name": "tokens", "limit": 100, "window_seconds": 60},
            ],
        )
        ok = (await api.verify(secret, ratelimits=[{"name": "tokens", "cost": 60}])).json()
        assert [9, 40] == [r["remaining"] for r in ok["ratelimits"]]
        refused = (await api.verify(secret, ratelimits=[{"name": "tokens", "cost": 60}])).json()
        assert "RATE_LIMITED" == refused["code"]
        # "requests" was not charged for the refused request.
        assert [9, 40] == [r["remaining"] for r in refused["ratelimits"]]

    async def test_cost_is_charged_to_every_limit(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"], rate_limits=[{"name": "units", "limit": 10, "window_seconds": 60}]
        )
        body = (await api.verify(secret, cost=4)).json()
        assert 6 == body["ratelimits"][0]["remaining"]

    async def test_identity_limits_are_shared_and_a_key_limit_of_the_same_name_wins(self, api):
        tenant = await api.tenant()
        identity = await api.client.post(
            f"/v1/tenants/{tenant['id']}/identities",
            json={
                "external_id": "customer_1",
                "rate_limits": [
                    {"name": "requests", "limit": 2, "window_seconds": 60},
                    {"name": "daily", "limit": 3, "window_seconds": 86400},
                ],
            },
            headers=api.auth(),
        )
        assert 201 == identity.status_code, identity.text
        identity_id = identity.json()["id"]
        _, first = await api.key(tenant["id"], identity_id=identity_id)
        _, second = await api.key(
            tenant["id"],
            identity_id=identity_id,
            rate_limits=[{"name": "requests", "limit": 100, "window_seconds": 60}],
        )
        assert "VALID" == (await api.verify(first)).json()["code"]
        assert "VALID" == (await api.verify(first)).json()["code"]
        assert "RATE_LIMITED" == (await api.verify(first)).json()["code"]
        # The second key has its own "requests" limit but shares "daily" (2 of 3 used).
        body = (await api.verify(second)).json()
        assert "VALID" == body["code"]
        assert {"requests": 99, "daily": 0} == {
            r["name"]: r["remaining"] for r in body["ratelimits"]
        }
        assert "customer_1" == body["identity"]["external_id"]
        assert "RATE_LIMITED" == (await api.verify(second)).json()["code"]


class TestConcurrency:
    async def test_leases_limit_concurrency_and_release_frees_a_slot(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], max_concurrency=2)
        first = (await api.verify(secret)).json()["lease_id"]
        second = (await api.verify(secret)).json()["lease_id"]
        assert first is not None
        assert second is not None
        assert first != second
        body = (await api.verify(secret)).json()
        assert ("CONCURRENCY_LIMITED", None) == (body["code"], body["lease_id"])
        released = await api.client.post(f"/v1/leases/{first}/release", headers=api.auth())
        assert (200, {"released": True}) == (released.status_code, released.json())
        again = await api.client.post(f"/v1/leases/{first}/release", headers=api.auth())
        assert {"released": False} == again.json()
        assert "VALID" == (await api.verify(secret)).json()["code"]

    async def test_an_unreleased_lease_expires(self, api, clock):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], max_concurrency=1, lease_ttl_seconds=5)
        assert "VALID" == (await api.verify(secret)).json()["code"]
        assert "CONCURRENCY_LIMITED" == (await api.verify(secret)).json()["code"]
        clock.advance(5)
        assert "VALID" == (await api.verify(secret)).json()["code"]

    @pytest.mark.parametrize("lease_id", ["nope", "lse_" + "!" * 60, "x" * 128])
    async def test_malformed_lease_ids_are_404(self, api, lease_id):
        response = await api.client.post(f"/v1/leases/{lease_id}/release", headers=api.auth())
        assert (404, "lease.not_found") == (response.status_code, response.json()["code"])

    async def test_a_well_formed_but_unknown_lease_is_not_held(self, api):
        response = await api.client.post(f"/v1/leases/lse_{'0' * 60}/release", headers=api.auth())
        assert (200, {"released": False}) == (response.status_code, response.json())

    async def test_another_tenants_lease_is_404(self, api):
        tenant = await api.tenant()
        other = await api.tenant("Other")
        _, secret = await api.key(tenant["id"], max_concurrency=1)
        lease = (await api.verify(secret)).json()["lease_id"]
        scoped = await api.service_account(other["id"], ["keys.verify"])
        response = await api.client.post(f"/v1/leases/{lease}/release", headers=api.auth(scoped))
        assert 404 == response.status_code
        assert "CONCURRENCY_LIMITED" == (await api.verify(secret)).json()["code"]


class TestCredits:
    async def test_usage_exceeded_when_credits_run_out(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], credits={"remaining": 3})
        assert 1 == (await api.verify(secret, cost=2)).json()["credits"]["remaining"]
        body = (await api.verify(secret, cost=2)).json()
        assert ("USAGE_EXCEEDED", {"remaining": 1}) == (body["code"], body["credits"])
        assert 0 == (await api.verify(secret)).json()["credits"]["remaining"]

    async def test_set_increment_decrement(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"], credits={"remaining": 5})
        path = f"/v1/tenants/{tenant['id']}/keys/{key['id']}/credits"
        await api.verify(secret, cost=2)
        assert 3 == (await api.client.get(path, headers=api.auth())).json()["remaining"]
        changed = await api.client.post(
            path, json={"op": "increment", "amount": 10}, headers=api.auth()
        )
        assert 13 == changed.json()["remaining"]
        changed = await api.client.post(
            path, json={"op": "decrement", "amount": 4}, headers=api.auth()
        )
        assert 9 == changed.json()["remaining"]
        refused = await api.client.post(
            path, json={"op": "decrement", "amount": 10}, headers=api.auth()
        )
        assert (409, "credits.insufficient") == (refused.status_code, refused.json()["code"])
        changed = await api.client.post(path, json={"op": "set", "amount": 1}, headers=api.auth())
        assert 1 == changed.json()["remaining"]
        assert 0 == (await api.verify(secret)).json()["credits"]["remaining"]
        assert "USAGE_EXCEEDED" == (await api.verify(secret)).json()["code"]

    async def test_daily_refill_sets_the_balance(self, api, clock):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"],
            credits={"remaining": 1, "refill": {"interval": "daily", "amount": 5}},
        )
        assert "VALID" == (await api.verify(secret)).json()["code"]
        assert "USAGE_EXCEEDED" == (await api.verify(secret)).json()["code"]
        clock.advance(86_400)
        assert 4 == (await api.verify(secret)).json()["credits"]["remaining"]

    async def test_identity_credits_are_shared(self, api):
        tenant = await api.tenant()
        identity = await api.client.post(
            f"/v1/tenants/{tenant['id']}/identities",
            json={"external_id": "c1", "credits": {"remaining": 2}},
            headers=api.auth(),
        )
        identity_id = identity.json()["id"]
        _, first = await api.key(tenant["id"], identity_id=identity_id)
        _, second = await api.key(tenant["id"], identity_id=identity_id)
        assert "VALID" == (await api.verify(first)).json()["code"]
        assert "VALID" == (await api.verify(second)).json()["code"]
        assert "USAGE_EXCEEDED" == (await api.verify(first)).json()["code"]
        path = f"/v1/tenants/{tenant['id']}/identities/{identity_id}/credits"
        await api.client.post(path, json={"op": "increment", "amount": 1}, headers=api.auth())
        assert "VALID" == (await api.verify(second)).json()["code"]

    @pytest.mark.parametrize(
        "body",
        [
            {"op": "increment", "amount": -1},
            {"op": "add", "amount": 1},
            {"op": "set", "amount": 1.5},
            {"op": "set", "amount": True},
            {"op": "set", "amount": 2**53},
            {"op": "increment"},
        ],
        ids=["negative", "unknown-op", "float", "bool", "too-big", "missing-amount"],
    )
    async def test_bad_operations_are_422(self, api, body):
        tenant = await api.tenant()
        key, _ = await api.key(tenant["id"], credits={"remaining": 5})
        response = await api.client.post(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}/credits", json=body, headers=api.auth()
        )
        assert 422 == response.status_code


class TestBudget:
    async def test_budget_exceeded_and_soft_limit(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"], budget={"limit": 1_000_000, "period": "month", "soft_threshold": 0.5}
        )
        body = (await api.verify(secret, spend=400_000)).json()
        assert {"remaining": 600_000, "soft_limit_reached": False} == body["budget"]
        body = (await api.verify(secret, spend=100_000)).json()
        assert {"remaining": 500_000, "soft_limit_reached": True} == body["budget"]
        body = (await api.verify(secret, spend=600_000)).json()
        assert ("BUDGET_EXCEEDED", 500_000) == (body["code"], body["budget"]["remaining"])


class TestDeniedConsumesNothing:
    async def test_a_refused_request_charges_no_limit_credit_budget_or_lease(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"],
            rate_limits=[{"name": "requests", "limit": 10, "window_seconds": 60}],
            credits={"remaining": 10},
            budget={"limit": 100},
            max_concurrency=1,
        )
        over_budget = (await api.verify(secret, spend=101)).json()
        assert "BUDGET_EXCEEDED" == over_budget["code"]
        assert over_budget["lease_id"] is None
        forbidden = (await api.verify(secret, permissions="admin")).json()
        assert "INSUFFICIENT_PERMISSIONS" == forbidden["code"]
        body = (await api.verify(secret, spend=100)).json()
        assert "VALID" == body["code"]
        assert 9 == body["ratelimits"][0]["remaining"]
        assert {"remaining": 9} == body["credits"]
        assert 0 == body["budget"]["remaining"]
        assert body["lease_id"] is not None


class TestStandaloneRateLimit:
    async def test_limits_anything(self, api):
        body = {"namespace": "chat", "identifier": "user_1", "limit": 2, "window_seconds": 60}
        answers = [
            (await api.client.post("/v1/ratelimit", json=body, headers=api.auth())).json()
            for _ in range(3)
        ]
        assert [True, True, False] == [a["success"] for a in answers]
        assert [1, 0, 0] == [a["remaining"] for a in answers]
        other = {**body, "identifier": "user_2"}
        assert (await api.client.post("/v1/ratelimit", json=other, headers=api.auth())).json()[
            "success"
        ]

    async def test_namespaces_of_tenants_are_apart(self, api):
        first = await api.tenant()
        second = await api.tenant("Second")
        body = {"namespace": "n", "identifier": "i", "limit": 1, "window_seconds": 60}
        for tenant in (first, second):
            scoped = await api.service_account(tenant["id"], ["keys.verify"])
            answer = await api.client.post("/v1/ratelimit", json=body, headers=api.auth(scoped))
            assert answer.json()["success"] is True

    @pytest.mark.parametrize(
        "change",
        [{"limit": 0}, {"window_seconds": 0}, {"window_seconds": 31 * 86400 + 1}, {"cost": -1}],
        ids=["zero-limit", "zero-window", "window-too-long", "negative-cost"],
    )
    async def test_bad_input_is_422(self, api, change):
        body = {"namespace": "n", "identifier": "i", "limit": 1, "window_seconds": 60, **change}
        response = await api.client.post("/v1/ratelimit", json=body, headers=api.auth())
        assert 422 == response.status_code

    async def test_another_tenant_is_404(self, api):
        first = await api.tenant()
        second = await api.tenant("Second")
        scoped = await api.service_account(first["id"], ["keys.verify"])
        body = {
            "namespace": "n",
            "identifier": "i",
            "limit": 1,
            "window_seconds": 60,
            "tenant_id": second["id"],
        }
        response = await api.client.post("/v1/ratelimit", json=body, headers=api.auth(scoped))
        assert 404 == response.status_code
