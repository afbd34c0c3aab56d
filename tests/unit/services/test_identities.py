import logging
from dataclasses import replace

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain.credits import NO_REFILL, Credits, Refill, RefillInterval
from keyrack.domain.limits import CreditState, identity_slot
from keyrack.domain.models import Identity, Tenant
from keyrack.domain.permissions import Permission
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import (
    BackendUnavailable,
    ConcurrentUpdate,
    DuplicateExternalId,
    IdentityNotFound,
    InvalidInput,
    PermissionDenied,
    TenantNotFound,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.identities import (
    MAX_RATE_LIMITS,
    IdentityChanges,
    IdentityService,
    NewIdentity,
)
from keyrack.services.keys import NewKey
from keyrack.services.pagination import MAX_LIMIT
from tests.fakes import (
    FakeIdentityRepository,
    FakeServices,
    FakeUnitOfWork,
    tenant_principal,
)

pytestmark = pytest.mark.anyio

P = Permission
RPM = RateLimit("requests", 100, 60_000)
TOKENS = RateLimit("tokens", 50_000, 86_400_000)


class RecordingLimits(MemoryLimitStore):
    """The memory store, recording every explicit set; ``down`` makes sets fail."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.sets: list[tuple[str, str, CreditState]] = []
        self.down = False

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        if self.down:
            raise BackendUnavailable("the limit store is unavailable")
        self.sets.append((tenant_id, slot, state))
        await super().set_credits(tenant_id, slot, state)


@pytest.fixture
def limits(svc: FakeServices) -> RecordingLimits:
    return RecordingLimits(svc.clock.now)


@pytest.fixture
def ids(svc: FakeServices, limits: RecordingLimits) -> IdentityService:
    return IdentityService(
        uow=svc.uow, clock=svc.clock, entropy=svc.entropy, cache=svc.key_cache, limits=limits
    )


def _now_ms(svc: FakeServices) -> int:
    return int(svc.clock.now() * 1000)


async def _key_of(svc: FakeServices, tenant: Tenant, identity: Identity, name: str = "k") -> str:
    """A key of ``tenant`` attached to ``identity`` (written straight into the fake database)."""
    key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name=name))
    svc.db.keys[key.id] = replace(key, identity_id=identity.id)
    return key.id


def _cache_entry(svc: FakeServices, key_id: str) -> bytes:
    digest = key_id.encode()
    svc.key_cache.put(digest, None, owner=key_id, expires_at=svc.clock.now() + 60)
    return digest


class TestCreate:
    async def test_returns_the_identity_as_stored(self, svc, ids, tenant):
        identity = await ids.create(
            OPERATOR,
            tenant.id,
            NewIdentity(external_id="cus_42", meta={"plan": "pro"}, rate_limits=(RPM, TOKENS)),
        )

        assert identity.id.startswith("idn_")
        assert (tenant.id, "cus_42", {"plan": "pro"}, (RPM, TOKENS), 1) == (
            identity.tenant_id,
            identity.external_id,
            identity.meta,
            identity.limits.rate_limits,
            identity.version,
        )
        assert to_datetime(svc.clock.now()) == identity.created_at == identity.updated_at
        assert {identity.id: identity} == svc.db.identities

    async def test_credits_start_now_at_version_0_and_reach_the_limit_store(
        self, svc, ids, limits, tenant
    ):
        refill = Refill(RefillInterval.MONTHLY, 1000, 1)

        identity = await ids.create(
            OPERATOR,
            tenant.id,
            NewIdentity(external_id="cus_1", credits=Credits(500, refill, refilled_at_ms=7)),
        )

        assert Credits(500, refill, _now_ms(svc)) == identity.limits.credits
        assert 0 == identity.limits.credits_version
        assert [(tenant.id, identity_slot(identity.id), CreditState(500, _now_ms(svc), 0))] == (
            limits.sets
        )

    @pytest.mark.parametrize(
        "credits",
        [None, Credits(None, NO_REFILL)],
        ids=["no-credits", "unlimited"],
    )
    async def test_nothing_reaches_the_limit_store_without_a_balance(
        self, ids, limits, tenant, credits
    ):
        await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c", credits=credits))

        assert [] == limits.sets

    async def test_external_id_is_stripped(self, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="  cus_1 "))

        assert "cus_1" == identity.external_id

    @pytest.mark.parametrize(
        "spec",
        [
            NewIdentity(external_id=""),
            NewIdentity(external_id="   "),
            NewIdentity(external_id="x" * 256),
            NewIdentity(external_id="a\x00b"),
            NewIdentity(external_id="c", meta={"blob": "x" * 17_000}),
            NewIdentity(
                external_id="c", meta={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}
            ),
            NewIdentity(external_id="c", rate_limits=(RPM, RateLimit("requests", 5, 1000))),
            NewIdentity(
                external_id="c",
                rate_limits=tuple(RateLimit(f"l{i}", 1, 1000) for i in range(MAX_RATE_LIMITS + 1)),
            ),
        ],
        ids=[
            "empty-external-id",
            "blank-external-id",
            "long-external-id",
            "control-character",
            "meta-too-big",
            "meta-too-deep",
            "duplicate-limit-names",
            "too-many-limits",
        ],
    )
    async def test_out_of_bounds_input_is_rejected_and_changes_nothing(
        self, svc, ids, tenant, spec
    ):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput):
            await ids.create(OPERATOR, tenant.id, spec)

        assert before == svc.db.snapshot()

    async def test_taken_external_id_is_a_conflict(self, svc, ids, tenant):
        await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="cus_1"))
        before = svc.db.snapshot()

        with pytest.raises(DuplicateExternalId):
            await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="cus_1"))

        assert before == svc.db.snapshot()

    async def test_the_same_external_id_in_another_tenant_is_fine(self, ids, tenant, other_tenant):
        mine = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="cus_1"))
        theirs = await ids.create(OPERATOR, other_tenant.id, NewIdentity(external_id="cus_1"))

        assert mine.id != theirs.id

    async def test_unknown_tenant_is_not_found(self, svc, ids):
        with pytest.raises(TenantNotFound):
            await ids.create(OPERATOR, "ten_missing", NewIdentity(external_id="c"))

        assert {} == svc.db.identities

    async def test_caller_without_keys_write_is_denied(self, svc, ids, tenant):
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        with pytest.raises(PermissionDenied):
            await ids.create(reader, tenant.id, NewIdentity(external_id="c"))

        assert {} == svc.db.identities

    async def test_tenant_scoped_caller_sees_another_tenant_as_missing(
        self, svc, ids, tenant, other_tenant
    ):
        writer = tenant_principal(tenant.id, P.KEYS_WRITE)
        opened = svc.uow.opened

        with pytest.raises(TenantNotFound):
            await ids.create(writer, other_tenant.id, NewIdentity(external_id="c"))

        assert opened == svc.uow.opened

    async def test_the_service_graph_wires_identities(self, svc, tenant):
        identity = await svc.identities.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        assert identity == await svc.identities.get(OPERATOR, tenant.id, identity.id)


class TestGet:
    async def test_reads_back_what_create_returned(self, ids, tenant):
        identity = await ids.create(
            OPERATOR,
            tenant.id,
            NewIdentity(external_id="c", rate_limits=(RPM,), credits=Credits(5)),
        )

        assert identity == await ids.get(OPERATOR, tenant.id, identity.id)

    async def test_unknown_identity_is_not_found(self, ids, tenant):
        with pytest.raises(IdentityNotFound):
            await ids.get(OPERATOR, tenant.id, "idn_missing")

    async def test_another_tenants_identity_is_not_found_under_this_tenant(
        self, ids, tenant, other_tenant
    ):
        theirs = await ids.create(OPERATOR, other_tenant.id, NewIdentity(external_id="c"))

        with pytest.raises(IdentityNotFound):
            await ids.get(OPERATOR, tenant.id, theirs.id)

    async def test_unknown_tenant_is_not_found(self, ids):
        with pytest.raises(TenantNotFound):
            await ids.get(OPERATOR, "ten_missing", "idn_missing")

    async def test_keys_read_is_enough(self, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        assert identity == await ids.get(reader, tenant.id, identity.id)

    async def test_caller_without_keys_read_is_denied(self, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        with pytest.raises(PermissionDenied):
            await ids.get(tenant_principal(tenant.id, P.KEYS_WRITE), tenant.id, identity.id)


class TestList:
    async def test_pages_through_the_tenants_identities_in_creation_order(
        self, svc, ids, tenant, other_tenant
    ):
        made = []
        for n in range(5):
            made.append(await ids.create(OPERATOR, tenant.id, NewIdentity(external_id=f"c{n}")))
            svc.clock.advance(1)
        await ids.create(OPERATOR, other_tenant.id, NewIdentity(external_id="theirs"))

        first = await ids.list(OPERATOR, tenant.id, limit=2)
        second = await ids.list(OPERATOR, tenant.id, limit=2, cursor=first.next_cursor)
        last = await ids.list(OPERATOR, tenant.id, limit=2, cursor=second.next_cursor)

        assert made == [*first.items, *second.items, *last.items]
        assert last.next_cursor is None

    async def test_external_id_finds_one(self, ids, tenant, other_tenant):
        await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="a"))
        wanted = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="b"))
        await ids.create(OPERATOR, other_tenant.id, NewIdentity(external_id="b"))

        page = await ids.list(OPERATOR, tenant.id, external_id=" b ")

        assert [wanted] == list(page.items)
        assert [] == list((await ids.list(OPERATOR, tenant.id, external_id="zz")).items)

    @pytest.mark.parametrize(
        ("limit", "cursor", "external_id"),
        [
            (0, None, None),
            (MAX_LIMIT + 1, None, None),
            (10, "key_0000000000000000000000", None),
            (10, "nonsense", None),
            (10, None, ""),
            (10, None, "x" * 256),
        ],
        ids=["zero", "too-big", "foreign-cursor", "junk-cursor", "empty-filter", "long-filter"],
    )
    async def test_bad_arguments_are_invalid(self, ids, tenant, limit, cursor, external_id):
        with pytest.raises(InvalidInput):
            await ids.list(OPERATOR, tenant.id, limit=limit, cursor=cursor, external_id=external_id)

    async def test_unknown_tenant_is_not_found(self, ids):
        with pytest.raises(TenantNotFound):
            await ids.list(OPERATOR, "ten_missing")

    async def test_caller_without_keys_read_is_denied(self, ids, tenant):
        with pytest.raises(PermissionDenied):
            await ids.list(tenant_principal(tenant.id, P.KEYS_WRITE), tenant.id)


class TestUpdate:
    @pytest.fixture
    async def identity(self, ids, tenant) -> Identity:
        return await ids.create(
            OPERATOR,
            tenant.id,
            NewIdentity(
                external_id="cus_1",
                meta={"plan": "free"},
                rate_limits=(RPM,),
                credits=Credits(100, Refill(RefillInterval.DAILY, 100)),
            ),
        )

    async def test_omitted_fields_stay_and_the_version_moves(self, svc, ids, tenant, identity):
        svc.clock.advance(10)

        updated = await ids.update(OPERATOR, tenant.id, identity.id, IdentityChanges())

        assert replace(identity, updated_at=to_datetime(svc.clock.now()), version=2) == updated
        assert updated == await ids.get(OPERATOR, tenant.id, identity.id)

    async def test_changes_external_id_meta_and_rate_limits(self, ids, tenant, identity):
        changes = IdentityChanges(
            external_id=" cus_2 ", meta={"plan": "pro"}, rate_limits=(TOKENS,)
        )

        updated = await ids.update(OPERATOR, tenant.id, identity.id, changes)

        assert ("cus_2", {"plan": "pro"}, (TOKENS,)) == (
            updated.external_id,
            updated.meta,
            updated.limits.rate_limits,
        )
        assert identity.limits.credits == updated.limits.credits
        assert 0 == updated.limits.credits_version
        assert updated == await ids.get(OPERATOR, tenant.id, identity.id)

    async def test_empty_rate_limits_remove_them_all(self, ids, tenant, identity):
        updated = await ids.update(
            OPERATOR, tenant.id, identity.id, IdentityChanges(rate_limits=())
        )

        assert () == updated.limits.rate_limits

    async def test_credits_replace_configuration_and_balance_as_an_explicit_set(
        self, svc, ids, limits, tenant, identity
    ):
        svc.clock.advance(60)
        limits.sets.clear()
        credits = Credits(7, Refill(RefillInterval.MONTHLY, 50, 15))

        updated = await ids.update(
            OPERATOR, tenant.id, identity.id, IdentityChanges(credits=credits)
        )

        assert Credits(7, credits.refill, _now_ms(svc)) == updated.limits.credits
        assert 1 == updated.limits.credits_version
        assert updated == await ids.get(OPERATOR, tenant.id, identity.id)
        assert [(tenant.id, identity_slot(identity.id), CreditState(7, _now_ms(svc), 1))] == (
            limits.sets
        )

    async def test_every_set_bumps_the_credits_version(self, ids, tenant, identity):
        versions = [
            (
                await ids.update(
                    OPERATOR, tenant.id, identity.id, IdentityChanges(credits=Credits(1))
                )
            ).limits.credits_version
            for _ in range(3)
        ]

        assert [1, 2, 3] == versions

    async def test_null_credits_remove_them(self, ids, limits, tenant, identity):
        limits.sets.clear()

        updated = await ids.update(OPERATOR, tenant.id, identity.id, IdentityChanges(credits=None))

        assert updated.limits.credits is None
        assert 1 == updated.limits.credits_version
        assert updated == await ids.get(OPERATOR, tenant.id, identity.id)
        assert [] == limits.sets

    async def test_credits_can_be_added_to_an_identity_without_them(self, svc, ids, tenant):
        bare = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="bare"))

        updated = await ids.update(
            OPERATOR, tenant.id, bare.id, IdentityChanges(credits=Credits(9))
        )

        assert Credits(9, NO_REFILL, _now_ms(svc)) == updated.limits.credits
        assert updated == await ids.get(OPERATOR, tenant.id, bare.id)

    async def test_an_unreachable_limit_store_is_logged_not_raised(
        self, ids, limits, tenant, identity, caplog
    ):
        limits.down = True

        updated = await ids.update(
            OPERATOR, tenant.id, identity.id, IdentityChanges(credits=Credits(3))
        )

        assert updated == await ids.get(OPERATOR, tenant.id, identity.id)
        assert ["identity.credits_push_failed"] == [
            r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
        ]

    async def test_keys_of_the_identity_are_invalidated(self, svc, ids, tenant, identity):
        key_ids = [await _key_of(svc, tenant, identity, name) for name in ("a", "b")]
        unrelated, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="other"))
        digests = [_cache_entry(svc, key_id) for key_id in [*key_ids, unrelated.id]]
        logged = len(svc.db.invalidations)

        await ids.update(OPERATOR, tenant.id, identity.id, IdentityChanges(meta={"x": 1}))

        assert [None, None] == [svc.key_cache.get(d) for d in digests[:2]]
        assert svc.key_cache.get(digests[2]) is not None
        new_entries = sorted(svc.db.invalidations.items())[logged:]
        assert sorted(key_ids) == sorted(owner for _, (owner, _) in new_entries)

    async def test_without_keys_nothing_is_logged_for_invalidation(
        self, svc, ids, tenant, identity
    ):
        logged = dict(svc.db.invalidations)

        await ids.update(OPERATOR, tenant.id, identity.id, IdentityChanges(meta={}))

        assert logged == svc.db.invalidations

    @pytest.mark.parametrize(
        "changes",
        [
            IdentityChanges(external_id=""),
            IdentityChanges(meta={"blob": "x" * 17_000}),
            IdentityChanges(rate_limits=(RPM, RPM)),
        ],
        ids=["empty-external-id", "meta-too-big", "duplicate-limit-names"],
    )
    async def test_out_of_bounds_changes_are_rejected(self, svc, ids, tenant, identity, changes):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput):
            await ids.update(OPERATOR, tenant.id, identity.id, changes)

        assert before == svc.db.snapshot()

    async def test_taking_another_identitys_external_id_is_a_conflict(
        self, svc, ids, tenant, identity
    ):
        await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="taken"))
        before = svc.db.snapshot()

        with pytest.raises(DuplicateExternalId):
            await ids.update(OPERATOR, tenant.id, identity.id, IdentityChanges(external_id="taken"))

        assert before == svc.db.snapshot()

    async def test_keeping_its_own_external_id_is_fine(self, ids, tenant, identity):
        updated = await ids.update(
            OPERATOR, tenant.id, identity.id, IdentityChanges(external_id="cus_1")
        )

        assert "cus_1" == updated.external_id

    async def test_a_concurrent_change_wins(self, svc, limits, tenant, identity):
        class StaleIdentities(FakeIdentityRepository):
            async def update(self, identity, *, expected_version):
                return False

        class StaleUow(FakeUnitOfWork):
            def identities(self, tenant_id):
                return StaleIdentities(self, tenant_id)

        stale = IdentityService(
            uow=lambda: StaleUow(svc.db),
            clock=svc.clock,
            entropy=svc.entropy,
            cache=svc.key_cache,
            limits=limits,
        )
        before = svc.db.snapshot()

        with pytest.raises(ConcurrentUpdate):
            await stale.update(OPERATOR, tenant.id, identity.id, IdentityChanges(meta={}))

        assert before == svc.db.snapshot()

    async def test_unknown_identity_is_not_found(self, ids, tenant):
        with pytest.raises(IdentityNotFound):
            await ids.update(OPERATOR, tenant.id, "idn_missing", IdentityChanges())

    async def test_another_tenants_identity_is_not_found(self, ids, tenant, other_tenant, identity):
        with pytest.raises(IdentityNotFound):
            await ids.update(OPERATOR, other_tenant.id, identity.id, IdentityChanges(meta={}))

    async def test_unknown_tenant_is_not_found(self, ids, identity):
        with pytest.raises(TenantNotFound):
            await ids.update(OPERATOR, "ten_missing", identity.id, IdentityChanges())

    async def test_caller_without_keys_write_is_denied(self, ids, tenant, identity):
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        with pytest.raises(PermissionDenied):
            await ids.update(reader, tenant.id, identity.id, IdentityChanges(meta={}))


class TestDelete:
    async def test_removes_the_identity(self, svc, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        await ids.delete(OPERATOR, tenant.id, identity.id)

        assert {} == svc.db.identities
        with pytest.raises(IdentityNotFound):
            await ids.get(OPERATOR, tenant.id, identity.id)

    async def test_keys_stay_detached_with_a_new_version_and_are_invalidated(
        self, svc, ids, tenant
    ):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))
        keep = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="keep"))
        key_id = await _key_of(svc, tenant, identity)
        other_id = await _key_of(svc, tenant, keep)
        digest = _cache_entry(svc, key_id)
        version = svc.db.keys[key_id].version
        logged = len(svc.db.invalidations)

        await ids.delete(OPERATOR, tenant.id, identity.id)

        detached = svc.db.keys[key_id]
        assert (None, version + 1) == (detached.identity_id, detached.version)
        assert keep.id == svc.db.keys[other_id].identity_id
        assert svc.key_cache.get(digest) is None
        assert [key_id] == [owner for _, (owner, _) in sorted(svc.db.invalidations.items())][
            logged:
        ]

    async def test_the_external_id_is_free_again(self, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))
        await ids.delete(OPERATOR, tenant.id, identity.id)

        again = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        assert identity.id != again.id

    async def test_unknown_identity_is_not_found_and_changes_nothing(self, svc, ids, tenant):
        before = svc.db.snapshot()

        with pytest.raises(IdentityNotFound):
            await ids.delete(OPERATOR, tenant.id, "idn_missing")

        assert before == svc.db.snapshot()

    async def test_another_tenants_identity_is_not_found_and_keeps_its_keys(
        self, svc, ids, tenant, other_tenant
    ):
        theirs = await ids.create(OPERATOR, other_tenant.id, NewIdentity(external_id="c"))
        key_id = await _key_of(svc, other_tenant, theirs)

        with pytest.raises(IdentityNotFound):
            await ids.delete(OPERATOR, tenant.id, theirs.id)

        assert theirs.id == svc.db.keys[key_id].identity_id
        assert theirs == svc.db.identities[theirs.id]

    async def test_unknown_tenant_is_not_found(self, ids):
        with pytest.raises(TenantNotFound):
            await ids.delete(OPERATOR, "ten_missing", "idn_missing")

    async def test_caller_without_keys_write_is_denied(self, svc, ids, tenant):
        identity = await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        with pytest.raises(PermissionDenied):
            await ids.delete(tenant_principal(tenant.id, P.KEYS_READ), tenant.id, identity.id)

        assert identity == svc.db.identities[identity.id]

    async def test_tenant_deletion_takes_its_identities(self, svc, ids, tenant):
        await ids.create(OPERATOR, tenant.id, NewIdentity(external_id="c"))

        await svc.tenants.delete(OPERATOR, tenant.id)

        assert {} == svc.db.identities
