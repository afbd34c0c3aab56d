import logging

import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain.models import KeyStatus
from keyrack.domain.verification import NOT_FOUND, Outcome
from keyrack.errors import BackendUnavailable
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from tests.fakes import build_services, make_peppers

pytestmark = pytest.mark.anyio

UNKNOWN = keyformat.generate("kr", entropy=b"\x07" * 24)
GOOD = keyformat.generate("kr", entropy=b"\x01" * 24)

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("not a key", id="prose"),
    pytest.param(GOOD[:-1], id="truncated"),
    pytest.param(GOOD.upper(), id="upper-cased"),
    pytest.param(GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1"), id="wrong-checksum"),
    pytest.param("kr_" + "A" * 100_000, id="huge"),
    pytest.param(GOOD[:-1] + "é", id="unicode"),
    pytest.param(GOOD + "\n", id="trailing-newline"),
    pytest.param(keyformat.generate(keyformat.ROOT_PREFIX, entropy=b"\x02" * 24), id="root-key"),
]


@pytest.fixture
async def issued(svc, tenant):
    """A fresh key of ``tenant`` and its secret."""
    return await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k", meta={"plan": "free"}))


class TestWithoutStoreAccess:
    @pytest.mark.parametrize("presented", MALFORMED)
    async def test_malformed_or_root_key_is_not_found_without_touching_the_store(
        self, svc, presented
    ):
        result = await svc.verifier.verify(presented)

        assert NOT_FOUND == result
        assert (0, 0) == (svc.uow.opened, svc.db.statements)
        assert 0 == len(svc.key_cache)

    async def test_cache_hit_opens_no_unit_of_work(self, svc, issued):
        _, secret = issued
        await svc.verifier.verify(secret)
        opened = svc.uow.opened

        results = [await svc.verifier.verify(secret) for _ in range(3)]

        assert opened == svc.uow.opened
        assert {Outcome.VALID} == {r.outcome for r in results}


class TestFound:
    async def test_valid_key_answers_its_record(self, svc, tenant, issued):
        key, secret = issued

        result = await svc.verifier.verify(secret)

        assert result.valid
        record = result.record
        assert record is not None
        assert (key.id, tenant.id, "k", {"plan": "free"}, KeyStatus.ACTIVE, None) == (
            record.key_id,
            record.tenant_id,
            record.name,
            record.meta,
            record.status,
            record.valid_until,
        )

    async def test_cold_verify_is_one_unit_of_work(self, svc, issued):
        _, secret = issued
        opened = svc.uow.opened

        await svc.verifier.verify(secret)

        assert opened + 1 == svc.uow.opened
        assert not svc.uow.units[-1].committed

    async def test_key_expiry_answers_expired(self, svc, tenant):
        _, secret = await svc.keys.create(
            OPERATOR, tenant.id, NewKey(name="k", expires_at=to_datetime(svc.clock.now() + 5))
        )

        before = await svc.verifier.verify(secret)
        svc.clock.advance(5)
        at_expiry = await svc.verifier.verify(secret)

        assert (Outcome.VALID, Outcome.EXPIRED) == (before.outcome, at_expiry.outcome)
        assert at_expiry.record is not None

    async def test_record_is_reloaded_after_the_positive_ttl(self, svc, tenant, issued):
        _, secret = issued
        await svc.verifier.verify(secret)
        opened = svc.uow.opened

        svc.clock.advance(29.5)
        await svc.verifier.verify(secret)
        reused = svc.uow.opened
        svc.clock.advance(0.5)
        await svc.verifier.verify(secret)

        assert (opened, opened + 1) == (reused, svc.uow.opened)

    async def test_denied_key_is_not_touched(self, svc, tenant, issued):
        key, secret = issued
        await svc.keys.set_status(OPERATOR, tenant.id, key.id, "disable")

        result = await svc.verifier.verify(secret)

        assert Outcome.DISABLED is result.outcome
        assert 0 == svc.writes.pending

    async def test_valid_verify_records_last_use_for_write_behind(self, svc, tenant, issued):
        key, secret = issued
        svc.clock.advance(3)

        await svc.verifier.verify(secret)
        written = await svc.writes.flush()

        assert 1 == written
        assert to_datetime(svc.clock.now()) == svc.db.keys[key.id].last_used_at


class TestNegativeCache:
    async def test_unknown_key_is_not_found_and_cached(self, svc, tenant):
        opened = svc.uow.opened

        first = await svc.verifier.verify(UNKNOWN)
        second = await svc.verifier.verify(UNKNOWN)

        assert NOT_FOUND == first == second
        assert opened + 1 == svc.uow.opened

    async def test_miss_is_looked_up_again_after_the_negative_ttl(self, svc, tenant):
        await svc.verifier.verify(UNKNOWN)
        opened = svc.uow.opened

        svc.clock.advance(1.5)
        await svc.verifier.verify(UNKNOWN)
        within = svc.uow.opened
        svc.clock.advance(0.5)
        await svc.verifier.verify(UNKNOWN)

        assert (opened, opened + 1) == (within, svc.uow.opened)


class TestTenantScope:
    async def test_key_of_the_callers_tenant_is_found(self, svc, tenant, issued):
        _, secret = issued

        assert Outcome.VALID is (await svc.verifier.verify(secret, tenant_scope=tenant.id)).outcome

    async def test_another_tenants_key_is_not_found_even_when_cached(
        self, svc, tenant, other_tenant, issued
    ):
        _, secret = issued
        await svc.verifier.verify(secret)  # cached by a platform caller

        result = await svc.verifier.verify(secret, tenant_scope=other_tenant.id)

        assert NOT_FOUND == result
        assert 1 == svc.writes.pending  # only the platform caller's use was recorded

    async def test_another_tenants_key_is_not_found_cold(self, svc, other_tenant, issued):
        _, secret = issued

        assert NOT_FOUND == await svc.verifier.verify(secret, tenant_scope=other_tenant.id)


class TestRehash:
    async def test_key_found_under_an_old_pepper_is_rehashed_to_the_current_one(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        upgraded = build_services(db=svc.db, clock=svc.clock, peppers=make_peppers(1, 2))

        result = await upgraded.verifier.verify(secret)
        written = await upgraded.writes.flush()

        assert Outcome.VALID is result.outcome
        assert 2 == written  # last use and rehash
        [stored] = svc.db.secrets.values()
        assert (upgraded.peppers.digest(secret), 2) == (stored.digest, stored.pepper_version)
        fresh = build_services(db=svc.db, clock=svc.clock, peppers=make_peppers(1, 2))
        again = await fresh.verifier.verify(secret)
        assert again.record is not None
        assert key.id == again.record.key_id

    async def test_key_under_the_current_pepper_is_not_rehashed(self, svc, issued):
        _, secret = issued
        digest_before = next(iter(svc.db.secrets.values())).digest

        await svc.verifier.verify(secret)

        assert 1 == svc.writes.pending  # the last use only
        await svc.writes.flush()
        assert digest_before == next(iter(svc.db.secrets.values())).digest

    async def test_old_pepper_key_is_found_only_with_that_pepper_still_configured(
        self, svc, tenant
    ):
        _, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        dropped = build_services(db=svc.db, clock=svc.clock, peppers=make_peppers(2))

        assert NOT_FOUND == await dropped.verifier.verify(secret)


class TestStaleIfError:
    async def test_expired_entry_is_served_while_the_database_is_down(self, svc, issued, caplog):
        _, secret = issued
        await svc.verifier.verify(secret)
        svc.clock.advance(31)
        svc.db.unavailable = True

        with caplog.at_level(logging.WARNING):
            result = await svc.verifier.verify(secret)

        assert Outcome.VALID is result.outcome
        assert ["verify.stale_cache_used"] == [r.getMessage() for r in caplog.records]

    async def test_stale_miss_is_served_while_the_database_is_down(self, svc, tenant):
        await svc.verifier.verify(UNKNOWN)
        svc.clock.advance(3)
        svc.db.unavailable = True

        assert NOT_FOUND == await svc.verifier.verify(UNKNOWN)

    async def test_stale_entry_is_used_only_for_a_bounded_time(self, svc, issued):
        _, secret = issued
        await svc.verifier.verify(secret)  # cached until +30
        svc.db.unavailable = True

        svc.clock.advance(30 + 299.5)
        still_served = await svc.verifier.verify(secret)
        svc.clock.advance(0.5)

        assert Outcome.VALID is still_served.outcome
        with pytest.raises(BackendUnavailable):
            await svc.verifier.verify(secret)

    async def test_nothing_cached_reraises(self, svc, issued):
        _, secret = issued
        svc.db.unavailable = True

        with pytest.raises(BackendUnavailable):
            await svc.verifier.verify(secret)

    async def test_fresh_entry_needs_no_database(self, svc, issued):
        _, secret = issued
        await svc.verifier.verify(secret)
        svc.db.unavailable = True

        assert Outcome.VALID is (await svc.verifier.verify(secret)).outcome
