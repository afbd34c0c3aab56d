from typing import cast

import pytest
from sqlalchemy import update

from keyrack.store.tables import ApiKeyRow
from keyrack.store.uow import SqlUnitOfWork

pytestmark = pytest.mark.anyio

MAX_SAFE = 2**53 - 1
RPM = {"name": "requests", "limit": 100, "window_seconds": 60}
MONTHLY = {"interval": "monthly", "amount": 1000, "day": 1}


def _identities(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/identities"


async def _create(api, tenant_id: str, **body):
    body.setdefault("external_id", "cus_1")
    response = await api.client.post(_identities(tenant_id), json=body, headers=api.auth())
    assert 201 == response.status_code, response.text
    return response.json()


async def _attach(api, key_id: str, identity_id: str) -> None:
    """Put a key under an identity directly in the database (the key API may not offer it)."""
    async with api.runtime.uow() as uow:
        await cast(SqlUnitOfWork, uow).session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(identity_id=identity_id)
        )
        await uow.commit()


class TestCreate:
    async def test_answers_201_with_the_identity(self, api):
        tenant = await api.tenant()

        identity = await _create(
            api,
            tenant["id"],
            external_id="cus_42",
            meta={"plan": "pro"},
            rate_limits=[RPM],
            credits={"remaining": 500, "refill": MONTHLY},
        )

        assert identity["id"].startswith("idn_")
        assert {
            "id": identity["id"],
            "tenant_id": tenant["id"],
            "external_id": "cus_42",
            "meta": {"plan": "pro"},
            "rate_limits": [RPM],
            "credits": {"remaining": 500, "refill": MONTHLY},
            "created_at": identity["created_at"],
            "updated_at": identity["created_at"],
        } == identity
        got = await api.client.get(
            f"{_identities(tenant['id'])}/{identity['id']}", headers=api.auth()
        )
        assert (200, identity) == (got.status_code, got.json())

    async def test_defaults(self, api):
        tenant = await api.tenant()

        identity = await _create(api, tenant["id"], external_id="c")

        assert ({}, [], None) == (identity["meta"], identity["rate_limits"], identity["credits"])

    async def test_credits_without_refill_never_refill(self, api):
        tenant = await api.tenant()

        identity = await _create(api, tenant["id"], credits={"remaining": None})

        assert {
            "remaining": None,
            "refill": {"interval": "never", "amount": 0, "day": None},
        } == identity["credits"]

    async def test_taken_external_id_is_409(self, api):
        tenant = await api.tenant()
        await _create(api, tenant["id"], external_id="cus_1")

        response = await api.client.post(
            _identities(tenant["id"]), json={"external_id": "cus_1"}, headers=api.auth()
        )

        assert (409, "identity.duplicate_external_id") == (
            response.status_code,
            response.json()["code"],
        )

    async def test_the_same_external_id_in_two_tenants_is_fine(self, api):
        first, second = await api.tenant("A"), await api.tenant("B")

        a = await _create(api, first["id"], external_id="cus_1")
        b = await _create(api, second["id"], external_id="cus_1")

        assert a["id"] != b["id"]

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({}, id="no-external-id"),
            pytest.param({"external_id": ""}, id="empty-external-id"),
            pytest.param({"external_id": "   "}, id="blank-external-id"),
            pytest.param({"external_id": "x" * 256}, id="long-external-id"),
            pytest.param({"external_id": 42}, id="numeric-external-id"),
            pytest.param({"external_id": "c", "tenant_id": "ten_x"}, id="unknown-field"),
            pytest.param({"external_id": "c", "id": "idn_x"}, id="mass-assign-id"),
            pytest.param({"external_id": "c", "meta": {"x": "y" * 17_000}}, id="meta-too-big"),
            pytest.param(
                {
                    "external_id": "c",
                    "meta": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}},
                },
                id="meta-too-deep",
            ),
            pytest.param({"external_id": "c", "meta": [1]}, id="meta-not-object"),
            pytest.param({"external_id": "c", "rate_limits": RPM}, id="rate-limits-not-list"),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": 0}]}, id="zero-limit"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": -1}]}, id="negative-limit"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": MAX_SAFE + 1}]},
                id="huge-limit",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": 10**400}]},
                id="enormous-limit",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": True}]}, id="bool-limit"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": 1.5}]}, id="float-limit"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "limit": "10"}]}, id="string-limit"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "window_seconds": 0}]},
                id="zero-window",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "window_seconds": 31 * 86_400 + 1}]},
                id="window-over-31-days",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "window_seconds": False}]},
                id="bool-window",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "name": ""}]}, id="empty-limit-name"
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [{**RPM, "burst": 5}]},
                id="unknown-limit-field",
            ),
            pytest.param(
                {"external_id": "c", "rate_limits": [RPM, {**RPM, "limit": 5}]},
                id="duplicate-limit-names",
            ),
            pytest.param(
                {
                    "external_id": "c",
                    "rate_limits": [{**RPM, "name": f"l{i}"} for i in range(33)],
                },
                id="too-many-limits",
            ),
            pytest.param({"external_id": "c", "credits": {}}, id="credits-without-remaining"),
            pytest.param({"external_id": "c", "credits": {"remaining": -1}}, id="negative-credits"),
            pytest.param(
                {"external_id": "c", "credits": {"remaining": MAX_SAFE + 1}}, id="huge-credits"
            ),
            pytest.param({"external_id": "c", "credits": {"remaining": True}}, id="bool-credits"),
            pytest.param(
                {"external_id": "c", "credits": {"remaining": 1, "spent": 0}},
                id="unknown-credits-field",
            ),
            pytest.param(
                {"external_id": "c", "credits": {"remaining": 1, "refill": {"interval": "weekly"}}},
                id="unknown-interval",
            ),
            pytest.param(
                {"external_id": "c", "credits": {"remaining": 1, "refill": {**MONTHLY, "day": 32}}},
                id="day-32",
            ),
            pytest.param(
                {"external_id": "c", "credits": {"remaining": 1, "refill": {**MONTHLY, "day": 0}}},
                id="day-0",
            ),
            pytest.param(
                {
                    "external_id": "c",
                    "credits": {"remaining": 1, "refill": {"interval": "monthly", "amount": 5}},
                },
                id="monthly-without-day",
            ),
            pytest.param(
                {
                    "external_id": "c",
                    "credits": {
                        "remaining": 1,
                        "refill": {"interval": "daily", "amount": 5, "day": 3},
                    },
                },
                id="daily-with-day",
            ),
            pytest.param(
                {
                    "external_id": "c",
                    "credits": {"remaining": 1, "refill": {"interval": "daily", "amount": -5}},
                },
                id="negative-refill",
            ),
        ],
    )
    async def test_hostile_input_is_422_and_writes_nothing(self, api, body):
        tenant = await api.tenant()

        response = await api.client.post(_identities(tenant["id"]), json=body, headers=api.auth())

        assert 422 == response.status_code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        listed = await api.client.get(_identities(tenant["id"]), headers=api.auth())
        assert [] == listed.json()["items"]

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"external_id": "c", "rate_limits": [{"name": "r", "limit": NaN, '
            b'"window_seconds": 1}]}',
            b'{"external_id": "c", "credits": {"remaining": Infinity}}',
            b'{"external_id": "c", "credits": {"remaining": 1e400}}',
            b'{"external_id": "c"',
        ],
        ids=["nan", "infinity", "overflowing-float", "truncated"],
    )
    async def test_non_json_numbers_and_broken_bodies_are_422(self, api, raw):
        tenant = await api.tenant()

        response = await api.client.post(
            _identities(tenant["id"]),
            content=raw,
            headers={**api.auth(), "content-type": "application/json"},
        )

        assert 422 == response.status_code, response.text

    async def test_unknown_tenant_is_404(self, api):
        response = await api.client.post(
            _identities("ten_nope"), json={"external_id": "c"}, headers=api.auth()
        )

        assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])


class TestList:
    async def test_pages_in_creation_order_and_filters_by_external_id(self, api, clock):
        tenant, other = await api.tenant("A"), await api.tenant("B")
        made = []
        for n in range(3):
            made.append(await _create(api, tenant["id"], external_id=f"c{n}"))
            clock.advance(0.01)
        await _create(api, other["id"], external_id="c1")

        first = (
            await api.client.get(_identities(tenant["id"]), params={"limit": 2}, headers=api.auth())
        ).json()
        second = (
            await api.client.get(
                _identities(tenant["id"]),
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=api.auth(),
            )
        ).json()
        found = await api.client.get(
            _identities(tenant["id"]), params={"external_id": "c1"}, headers=api.auth()
        )

        assert made == first["items"] + second["items"]
        assert second["next_cursor"] is None
        assert {"items": [made[1]], "next_cursor": None} == found.json()

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 101},
            {"cursor": "junk"},
            {"cursor": "key_0000000000000000000000"},
            {"external_id": ""},
            {"external_id": "x" * 256},
        ],
        ids=["zero", "too-big", "junk-cursor", "foreign-cursor", "empty-filter", "long-filter"],
    )
    async def test_bad_parameters_are_422(self, api, params):
        tenant = await api.tenant()

        response = await api.client.get(
            _identities(tenant["id"]), params=params, headers=api.auth()
        )

        assert 422 == response.status_code, response.text


class TestUpdate:
    async def _identity(self, api):
        tenant = await api.tenant()
        identity = await _create(
            api,
            tenant["id"],
            meta={"plan": "free"},
            rate_limits=[RPM],
            credits={"remaining": 10, "refill": MONTHLY},
        )
        return tenant, identity, f"{_identities(tenant['id'])}/{identity['id']}"

    async def test_omitted_fields_stay(self, api, clock):
        _, identity, path = await self._identity(api)
        clock.advance(5)

        response = await api.client.patch(path, json={"meta": {"plan": "pro"}}, headers=api.auth())

        assert 200 == response.status_code, response.text
        updated = response.json()
        assert {**identity, "meta": {"plan": "pro"}, "updated_at": updated["updated_at"]} == updated
        assert updated["updated_at"] > identity["updated_at"]
        assert updated == (await api.client.get(path, headers=api.auth())).json()

    async def test_rate_limits_and_credits_are_replaced(self, api):
        _, _, path = await self._identity(api)
        tokens = {"name": "tokens", "limit": 5000, "window_seconds": 86_400}
        credits = {"remaining": 3, "refill": {"interval": "daily", "amount": 3, "day": None}}

        response = await api.client.patch(
            path,
            json={"external_id": "cus_2", "rate_limits": [tokens], "credits": credits},
            headers=api.auth(),
        )

        assert 200 == response.status_code, response.text
        updated = response.json()
        assert ("cus_2", [tokens], credits) == (
            updated["external_id"],
            updated["rate_limits"],
            updated["credits"],
        )
        assert updated == (await api.client.get(path, headers=api.auth())).json()

    async def test_null_credits_remove_them_and_empty_rate_limits_clear_them(self, api):
        _, _, path = await self._identity(api)

        response = await api.client.patch(
            path, json={"credits": None, "rate_limits": []}, headers=api.auth()
        )

        assert 200 == response.status_code, response.text
        assert (None, []) == (response.json()["credits"], response.json()["rate_limits"])

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"external_id": None}, id="null-external-id"),
            pytest.param({"meta": None}, id="null-meta"),
            pytest.param({"rate_limits": None}, id="null-rate-limits"),
            pytest.param({"external_id": ""}, id="empty-external-id"),
            pytest.param({"rate_limits": [RPM, RPM]}, id="duplicate-limit-names"),
            pytest.param({"rate_limits": [{**RPM, "window_seconds": 0}]}, id="zero-window"),
            pytest.param({"credits": {"remaining": -5}}, id="negative-credits"),
            pytest.param({"credits": {"remaining": 1.0}}, id="float-credits"),
            pytest.param({"version": 9}, id="unknown-field"),
            pytest.param({"meta": {"x": "y" * 17_000}}, id="meta-too-big"),
        ],
    )
    async def test_bad_changes_are_422_and_change_nothing(self, api, body):
        _, identity, path = await self._identity(api)

        response = await api.client.patch(path, json=body, headers=api.auth())

        assert 422 == response.status_code, response.text
        assert identity == (await api.client.get(path, headers=api.auth())).json()

    async def test_taking_another_identitys_external_id_is_409(self, api):
        tenant, _, path = await self._identity(api)
        await _create(api, tenant["id"], external_id="taken")

        response = await api.client.patch(path, json={"external_id": "taken"}, headers=api.auth())

        assert (409, "identity.duplicate_external_id") == (
            response.status_code,
            response.json()["code"],
        )


class TestDelete:
    async def test_answers_204_then_404_and_its_keys_stay_without_it(self, api):
        tenant = await api.tenant()
        identity = await _create(api, tenant["id"])
        key, _ = await api.key(tenant["id"])
        await _attach(api, key["id"], identity["id"])
        key_path = f"/v1/tenants/{tenant['id']}/keys/{key['id']}"
        assert (
            identity["id"]
            == (await api.client.get(key_path, headers=api.auth())).json()["identity_id"]
        )
        path = f"{_identities(tenant['id'])}/{identity['id']}"

        deleted = await api.client.delete(path, headers=api.auth())

        assert (204, b"") == (deleted.status_code, deleted.content)
        again = await api.client.get(path, headers=api.auth())
        assert (404, "identity.not_found") == (again.status_code, again.json()["code"])
        kept = await api.client.get(key_path, headers=api.auth())
        assert (200, None) == (kept.status_code, kept.json()["identity_id"])
        assert 404 == (await api.client.delete(path, headers=api.auth())).status_code


class TestTenancy:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("POST", "", {"external_id": "c"}),
            ("GET", "", None),
            ("GET", "/{id}", None),
            ("PATCH", "/{id}", {"meta": {}}),
            ("DELETE", "/{id}", None),
        ],
        ids=["create", "list", "get", "update", "delete"],
    )
    async def test_another_tenant_answers_404_on_every_route(self, api, method, suffix, body):
        mine, theirs = await api.tenant("Mine"), await api.tenant("Theirs")
        their_identity = await _create(api, theirs["id"])
        root = await api.service_account(mine["id"], ["keys.read", "keys.write"])
        path = _identities(theirs["id"]) + suffix.format(id=their_identity["id"])

        response = await api.client.request(method, path, json=body, headers=api.auth(root))

        assert (404, "tenant.not_found") == (response.status_code, response.json()["code"])
        still = await api.client.get(
            f"{_identities(theirs['id'])}/{their_identity['id']}", headers=api.auth()
        )
        assert their_identity == still.json()

    @pytest.mark.parametrize(
        ("method", "body"),
        [("GET", None), ("PATCH", {"meta": {}}), ("DELETE", None)],
        ids=["get", "update", "delete"],
    )
    async def test_another_tenants_identity_under_this_tenant_is_404(self, api, method, body):
        mine, theirs = await api.tenant("Mine"), await api.tenant("Theirs")
        their_identity = await _create(api, theirs["id"])
        path = f"{_identities(mine['id'])}/{their_identity['id']}"

        response = await api.client.request(method, path, json=body, headers=api.auth())

        assert (404, "identity.not_found") == (response.status_code, response.json()["code"])

    async def test_a_tenant_scoped_caller_manages_its_own_identities(self, api):
        tenant = await api.tenant()
        root = await api.service_account(tenant["id"], ["keys.read", "keys.write"])

        response = await api.client.post(
            _identities(tenant["id"]), json={"external_id": "c"}, headers=api.auth(root)
        )

        assert 201 == response.status_code, response.text


class TestPermissions:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("POST", "", {"external_id": "new"}),
            ("PATCH", "/{id}", {"meta": {}}),
            ("DELETE", "/{id}", None),
        ],
        ids=["create", "update", "delete"],
    )
    async def test_writes_need_keys_write(self, api, method, suffix, body):
        tenant = await api.tenant()
        identity = await _create(api, tenant["id"])
        reader = await api.service_account(tenant["id"], ["keys.read"])
        path = _identities(tenant["id"]) + suffix.format(id=identity["id"])

        response = await api.client.request(method, path, json=body, headers=api.auth(reader))

        assert (403, "auth.forbidden") == (response.status_code, response.json()["code"])
        listed = await api.client.get(_identities(tenant["id"]), headers=api.auth())
        assert [identity] == listed.json()["items"]

    async def test_reads_need_keys_read(self, api):
        tenant = await api.tenant()
        identity = await _create(api, tenant["id"])
        reader = await api.service_account(tenant["id"], ["keys.read"])
        writer = await api.service_account(tenant["id"], ["keys.write"])
        path = f"{_identities(tenant['id'])}/{identity['id']}"

        assert 200 == (await api.client.get(path, headers=api.auth(reader))).status_code
        denied = await api.client.get(_identities(tenant["id"]), headers=api.auth(writer))
        assert 403 == denied.status_code

    async def test_no_credential_is_401(self, api):
        tenant = await api.tenant()

        response = await api.client.get(_identities(tenant["id"]))

        assert 401 == response.status_code
