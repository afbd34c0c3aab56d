import logging
from dataclasses import astuple, replace
from datetime import timedelta

import anyio
import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain.models import ApiKey, KeySecret, KeyStatus, Tenant
from keyrack.domain.permissions import Permission
from keyrack.domain.verification import Outcome
from keyrack.errors import (
    ConcurrentUpdate,
    InvalidInput,
    KeyAlreadyRevoked,
    KeyNotFound,
    PermissionDenied,
    TenantNotFound,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import MAX_GRACE_SECONDS, UNSET, KeyChanges, NewKey
from keyrack.services.pagination import MAX_LIMIT
from keyrack.services.ports import KeyFilter
from keyrack.services.rbac import NewRole
from tests.fakes import FakeServices, build_services, tenant_principal

pytestmark = pytest.mark.anyio

P = Permission


def _live_secrets(svc: FakeServices, key_id: str) -> list[KeySecret]:
    now = to_datetime(svc.clock.now())
    return [
        s
        for s in svc.db.secrets.values()
        if s.key_id == key_id and (s.expires_at is None or s.expires_at > now)
    ]


class TestCreate:
    async def test_returns_the_key_and_a_secret_in_the_tenant_format(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="ci"))

        parsed = keyformat.parse(secret)
        assert parsed is not None
        assert "kr" == parsed.prefix
        assert keyformat.display_start(secret) == key.start
        assert KeyStatus.ACTIVE is key.status
        assert (tenant.id, "ci", 1) == (key.tenant_id, key.name, key.version)
        assert to_datetime(svc.clock.now()) == key.created_at == key.updated_at
        assert key.id.startswith("key_")

    async def test_stores_only_the_digest_of_the_secret(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="ci"))

        [stored] = svc.db.secrets.values()
        assert (key.id, svc.peppers.digest(secret), 1) == (
            stored.key_id,
            stored.digest,
            stored.pepper_version,
        )
        assert stored.expires_at is None
        every_field = [
            value for table in svc.db.snapshot() for row in table.values() for value in astuple(row)
        ]
        assert secret not in every_field
        assert secret not in repr(every_field)

    async def test_secret_is_never_returned_again(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="ci"))

        fetched = await svc.keys.get(OPERATOR, tenant.id, key.id)
        page = await svc.keys.list(OPERATOR, tenant.id)

        assert key == fetched
        assert [key] == list(page.items)
        assert secret not in repr(fetched)
        assert secret[len("kr_") + keyformat.START_DIGITS :] not in repr(fetched)

    async def test_keeps_every_field_asked_for(self, svc, tenant):
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="admin"))
        expires = to_datetime(svc.clock.now() + 3600)
        spec = NewKey(
            name="ci",
            description="for CI",
            expires_at=expires,
            owner_id="user_1",
            meta={"team": "infra", "n": [1, 2]},
            permissions=("chat.write",),
            roles=("admin",),
        )

        key, _ = await svc.keys.create(OPERATOR, tenant.id, spec)

        assert (
            "for CI",
            expires,
            "user_1",
            {"team": "infra", "n": [1, 2]},
            ("chat.write",),
            ("admin",),
        ) == (key.description, key.expires_at, key.owner_id, key.meta, key.permissions, key.roles)
        assert (False, False, None, None) == (
            key.system,
            key.recoverable,
            key.last_used_at,
            key.revoked_at,
        )

    async def test_uses_the_tenant_key_prefix(self, svc):
        tenant = await svc.tenants.create(OPERATOR, name="Stripe-ish", key_prefix="sk_live")

        _, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="ci"))

        assert secret.startswith("sk_live_")
        assert keyformat.parse(secret) is not None

    async def test_each_key_gets_a_distinct_id_and_secret(self, svc, tenant):
        made = [await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k")) for _ in range(5)]

        assert 5 == len({key.id for key, _ in made})
        assert 5 == len({secret for _, secret in made})

    @pytest.mark.parametrize("offset", [0, -1], ids=["now", "past"])
    async def test_expiry_not_in_the_future_is_rejected(self, svc, tenant, offset):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="expires_at"):
            await svc.keys.create(
                OPERATOR,
                tenant.id,
                NewKey(name="k", expires_at=to_datetime(svc.clock.now() + offset)),
            )

        assert before == svc.db.snapshot()

    async def test_unknown_tenant_is_not_found_and_changes_nothing(self, svc, tenant):
        before = svc.db.snapshot()

        with pytest.raises(TenantNotFound):
            await svc.keys.create(OPERATOR, "ten_missing", NewKey(name="k"))

        assert before == svc.db.snapshot()

    async def test_caller_without_keys_write_is_denied(self, svc, tenant):
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        with pytest.raises(PermissionDenied):
            await svc.keys.create(reader, tenant.id, NewKey(name="k"))

        assert 0 == len(svc.db.keys)

    async def test_tenant_scoped_caller_creates_in_its_own_tenant(self, svc, tenant):
        writer = tenant_principal(tenant.id, P.KEYS_WRITE)

        key, _ = await svc.keys.create(writer, tenant.id, NewKey(name="k"))

        assert tenant.id == key.tenant_id

    async def test_tenant_scoped_caller_sees_another_tenant_as_missing(
        self, svc, tenant, other_tenant
    ):
        writer = tenant_principal(tenant.id, P.KEYS_WRITE)
        opened = svc.uow.opened

        with pytest.raises(TenantNotFound):
            await svc.keys.create(writer, other_tenant.id, NewKey(name="k"))

        assert opened == svc.uow.opened

    async def test_secret_never_reaches_the_logs(self, svc, tenant, caplog):
        caplog.set_level(logging.DEBUG)

        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.verifier.verify(secret)
        await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        assert caplog.records
        for record in caplog.records:
            assert secret not in repr(record.__dict__)
            assert secret not in record.getMessage()


class TestGet:
    async def test_unknown_key_is_not_found(self, svc, tenant):
        with pytest.raises(KeyNotFound):
            await svc.keys.get(OPERATOR, tenant.id, "key_missing")

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.keys.get(OPERATOR, "ten_missing", "key_missing")

    async def test_another_tenants_key_is_not_found_under_this_tenant(
        self, svc, tenant, other_tenant
    ):
        theirs, _ = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="theirs"))

        with pytest.raises(KeyNotFound):
            await svc.keys.get(OPERATOR, tenant.id, theirs.id)

    async def test_tenant_scoped_caller_cannot_reach_another_tenant(
        self, svc, tenant, other_tenant
    ):
        theirs, _ = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="theirs"))
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        with pytest.raises(TenantNotFound):
            await svc.keys.get(reader, other_tenant.id, theirs.id)
        with pytest.raises(KeyNotFound):
            await svc.keys.get(reader, tenant.id, theirs.id)

    async def test_reader_without_keys_read_is_denied(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))

        with pytest.raises(PermissionDenied):
            await svc.keys.get(tenant_principal(tenant.id, P.KEYS_WRITE), tenant.id, key.id)


class TestList:
    async def _make(
        self, svc: FakeServices, tenant_id: str, count: int, owner_id: str | None = None
    ) -> list[ApiKey]:
        made = []
        for i in range(count):
            spec = NewKey(name=f"k{i}", owner_id=owner_id)
            made.append((await svc.keys.create(OPERATOR, tenant_id, spec))[0])
        return made

    async def test_pages_follow_the_cursor_in_creation_order(self, svc, tenant):
        made = await self._make(svc, tenant.id, 5)

        first = await svc.keys.list(OPERATOR, tenant.id, limit=2)
        second = await svc.keys.list(OPERATOR, tenant.id, limit=2, cursor=first.next_cursor)
        third = await svc.keys.list(OPERATOR, tenant.id, limit=2, cursor=second.next_cursor)

        assert made[:2] == list(first.items)
        assert made[1].id == first.next_cursor
        assert made[2:4] == list(second.items)
        assert made[4:] == list(third.items)
        assert third.next_cursor is None

    async def test_exactly_a_full_page_has_no_next_cursor(self, svc, tenant):
        made = await self._make(svc, tenant.id, 3)

        page = await svc.keys.list(OPERATOR, tenant.id, limit=3)

        assert (made, None) == (list(page.items), page.next_cursor)

    async def test_later_keys_sort_after_earlier_ones(self, svc, tenant):
        first = (await self._make(svc, tenant.id, 1))[0]
        svc.clock.advance(1)
        second = (await self._make(svc, tenant.id, 1))[0]

        page = await svc.keys.list(OPERATOR, tenant.id)

        assert [first, second] == list(page.items)

    async def test_empty_tenant_lists_nothing(self, svc, tenant):
        page = await svc.keys.list(OPERATOR, tenant.id)

        assert ([], None) == (list(page.items), page.next_cursor)

    @pytest.mark.parametrize("limit", [1, MAX_LIMIT], ids=["min", "max"])
    async def test_limit_bounds_are_accepted(self, svc, tenant, limit):
        made = await self._make(svc, tenant.id, 2)

        page = await svc.keys.list(OPERATOR, tenant.id, limit=limit)

        assert made[:limit] == list(page.items)

    @pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1], ids=["zero", "negative", "over"])
    async def test_limit_out_of_bounds_is_rejected(self, svc, tenant, limit):
        with pytest.raises(InvalidInput, match="limit"):
            await svc.keys.list(OPERATOR, tenant.id, limit=limit)

    @pytest.mark.parametrize(
        "cursor",
        ["", "garbage", "ten_035WfsHchVmHxZxco4JWA6", "key_short"],
        ids=["empty", "garbage", "other-type", "wrong-length"],
    )
    async def test_foreign_cursor_is_rejected(self, svc, tenant, cursor):
        with pytest.raises(InvalidInput, match="cursor"):
            await svc.keys.list(OPERATOR, tenant.id, cursor=cursor)

    async def test_lists_only_this_tenants_keys(self, svc, tenant, other_tenant):
        mine = await self._make(svc, tenant.id, 2)
        await self._make(svc, other_tenant.id, 2)

        page = await svc.keys.list(OPERATOR, tenant.id)

        assert mine == list(page.items)

    async def test_filters_by_status(self, svc, tenant):
        made = await self._make(svc, tenant.id, 3)
        await svc.keys.set_status(OPERATOR, tenant.id, made[1].id, "revoke")

        revoked = await svc.keys.list(
            OPERATOR, tenant.id, where=KeyFilter(status=KeyStatus.REVOKED)
        )
        active = await svc.keys.list(OPERATOR, tenant.id, where=KeyFilter(status=KeyStatus.ACTIVE))

        assert [made[1].id] == [k.id for k in revoked.items]
        assert [made[0].id, made[2].id] == [k.id for k in active.items]

    async def test_filters_by_owner(self, svc, tenant):
        await self._make(svc, tenant.id, 2, owner_id="alice")
        bobs = await self._make(svc, tenant.id, 1, owner_id="bob")

        page = await svc.keys.list(OPERATOR, tenant.id, where=KeyFilter(owner_id="bob"))

        assert bobs == list(page.items)

    async def test_system_keys_are_listed_only_when_asked(self, svc, tenant):
        [plain, system] = await self._make(svc, tenant.id, 2)
        svc.db.keys[system.id] = replace(system, system=True)

        default = await svc.keys.list(OPERATOR, tenant.id)
        everything = await svc.keys.list(OPERATOR, tenant.id, where=KeyFilter(include_system=True))

        assert [plain.id] == [k.id for k in default.items]
        assert [plain.id, system.id] == [k.id for k in everything.items]

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.keys.list(OPERATOR, "ten_missing")


class TestUpdate:
    async def _key(self, svc: FakeServices, tenant: Tenant) -> tuple[ApiKey, str]:
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="r"))
        spec = NewKey(
            name="ci",
            description="desc",
            owner_id="alice",
            expires_at=to_datetime(svc.clock.now() + 3600),
            meta={"a": 1},
            permissions=("p",),
            roles=("r",),
        )
        key, secret = await svc.keys.create(OPERATOR, tenant.id, spec)
        return key, secret

    async def test_changes_only_the_given_fields(self, svc, tenant):
        key, _ = await self._key(svc, tenant)
        svc.clock.advance(5)

        updated = await svc.keys.update(OPERATOR, tenant.id, key.id, KeyChanges(name="renamed"))

        assert (
            replace(key, name="renamed", version=2, updated_at=to_datetime(svc.clock.now()))
            == updated
        )
        assert updated == await svc.keys.get(OPERATOR, tenant.id, key.id)

    async def test_explicit_none_clears_and_unset_keeps(self, svc, tenant):
        key, _ = await self._key(svc, tenant)

        updated = await svc.keys.update(
            OPERATOR,
            tenant.id,
            key.id,
            KeyChanges(description=None, expires_at=None, owner_id=UNSET),
        )

        assert (None, None, "alice") == (
            updated.description,
            updated.expires_at,
            updated.owner_id,
        )

    async def test_empty_change_keeps_every_field(self, svc, tenant):
        key, _ = await self._key(svc, tenant)

        updated = await svc.keys.update(OPERATOR, tenant.id, key.id, KeyChanges())

        assert replace(key, version=2) == updated

    async def test_every_field_can_change(self, svc, tenant):
        key, _ = await self._key(svc, tenant)
        expires = to_datetime(svc.clock.now() + 60)
        changes = KeyChanges(
            name="n",
            description="d",
            expires_at=expires,
            owner_id="bob",
            meta={"b": 2},
            permissions=("x", "y"),
            roles=(),
        )

        updated = await svc.keys.update(OPERATOR, tenant.id, key.id, changes)

        assert ("n", "d", expires, "bob", {"b": 2}, ("x", "y"), ()) == (
            updated.name,
            updated.description,
            updated.expires_at,
            updated.owner_id,
            updated.meta,
            updated.permissions,
            updated.roles,
        )

    @pytest.mark.parametrize("offset", [0, -10], ids=["now", "past"])
    async def test_expiry_not_in_the_future_is_rejected(self, svc, tenant, offset):
        key, _ = await self._key(svc, tenant)
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="expires_at"):
            await svc.keys.update(
                OPERATOR,
                tenant.id,
                key.id,
                KeyChanges(expires_at=to_datetime(svc.clock.now() + offset)),
            )

        assert before == svc.db.snapshot()

    async def test_unknown_key_is_not_found(self, svc, tenant):
        with pytest.raises(KeyNotFound):
            await svc.keys.update(OPERATOR, tenant.id, "key_missing", KeyChanges(name="x"))

    async def test_verify_sees_the_change_at_once(self, svc, tenant):
        key, secret = await self._key(svc, tenant)
        assert Outcome.VALID is (await svc.verifier.verify(secret)).outcome

        await svc.keys.update(
            OPERATOR,
            tenant.id,
            key.id,
            KeyChanges(meta={"plan": "pro"}, expires_at=to_datetime(svc.clock.now() + 10)),
        )
        fresh = await svc.verifier.verify(secret)
        svc.clock.advance(10)
        expired = await svc.verifier.verify(secret)

        assert {"plan": "pro"} == fresh.record.meta
        assert Outcome.EXPIRED is expired.outcome

    async def test_concurrent_update_from_another_replica_loses(self, svc, tenant):
        key, _ = await self._key(svc, tenant)
        replica = build_services(db=svc.db, clock=svc.clock, peppers=svc.peppers)
        results: dict[str, object] = {}

        async def run(name, service):
            try:
                results[name] = await service.keys.update(
                    OPERATOR, tenant.id, key.id, KeyChanges(name=name)
                )
            except ConcurrentUpdate as exc:
                results[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "first", svc)
            tg.start_soon(run, "second", replica)

        assert isinstance(results["second"], ConcurrentUpdate)
        assert "first" == svc.db.keys[key.id].name
        assert 2 == svc.db.keys[key.id].version


class TestSetStatus:
    async def test_revoke_is_final_and_verify_sees_it_at_once(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.verifier.verify(secret)  # now cached
        svc.clock.advance(1)

        revoked = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")

        assert KeyStatus.REVOKED is revoked.status
        assert to_datetime(svc.clock.now()) == revoked.revoked_at == revoked.updated_at
        assert 2 == revoked.version
        assert Outcome.REVOKED is (await svc.verifier.verify(secret)).outcome

    async def test_revoke_is_idempotent(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        revoked = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")
        commits = svc.db.commits
        svc.clock.advance(60)

        again = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")

        assert revoked == again
        assert commits == svc.db.commits

    @pytest.mark.parametrize("action", ["enable", "disable"])
    async def test_revoked_key_cannot_be_enabled_or_disabled(self, svc, tenant, action):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")
        before = svc.db.snapshot()

        with pytest.raises(KeyAlreadyRevoked):
            await svc.keys.set_status(OPERATOR, tenant.id, key.id, action)

        assert before == svc.db.snapshot()
        assert Outcome.REVOKED is (await svc.verifier.verify(secret)).outcome

    async def test_disable_then_enable(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))

        disabled = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "disable")
        while_disabled = await svc.verifier.verify(secret)
        enabled = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "enable")
        after = await svc.verifier.verify(secret)

        assert (KeyStatus.DISABLED, None) == (disabled.status, disabled.revoked_at)
        assert Outcome.DISABLED is while_disabled.outcome
        assert (KeyStatus.ACTIVE, 3) == (enabled.status, enabled.version)
        assert Outcome.VALID is after.outcome

    async def test_disabled_key_can_be_revoked(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.keys.set_status(OPERATOR, tenant.id, key.id, "disable")

        revoked = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")

        assert KeyStatus.REVOKED is revoked.status

    async def test_enabling_an_active_key_changes_nothing(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        commits = svc.db.commits

        same = await svc.keys.set_status(OPERATOR, tenant.id, key.id, "enable")

        assert key == same
        assert commits == svc.db.commits

    async def test_another_tenants_key_is_not_found_and_stays_active(
        self, svc, tenant, other_tenant
    ):
        theirs, _ = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="k"))

        with pytest.raises(KeyNotFound):
            await svc.keys.set_status(OPERATOR, tenant.id, theirs.id, "revoke")

        assert KeyStatus.ACTIVE is svc.db.keys[theirs.id].status


class TestRotate:
    async def test_keeps_the_key_id_and_issues_a_new_secret(self, svc, tenant):
        key, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        svc.clock.advance(1)

        rotated, new = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        assert key.id == rotated.id
        assert old != new
        assert keyformat.display_start(new) == rotated.start
        assert (2, to_datetime(svc.clock.now())) == (rotated.version, rotated.updated_at)
        assert key.id == (await svc.verifier.verify(new)).record.key_id

    async def test_old_secret_is_valid_during_grace_and_expired_at_its_end(self, svc, tenant):
        key, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        _, new = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        during = await svc.verifier.verify(old)
        svc.clock.advance(59.5)
        just_before = await svc.verifier.verify(old)
        svc.clock.advance(0.5)
        at_end = await svc.verifier.verify(old)

        assert Outcome.VALID is during.outcome
        assert Outcome.VALID is just_before.outcome
        assert Outcome.EXPIRED is at_end.outcome
        assert Outcome.VALID is (await svc.verifier.verify(new)).outcome

    async def test_zero_grace_ends_the_old_secret_at_once(self, svc, tenant):
        key, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))

        await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=0)

        assert Outcome.EXPIRED is (await svc.verifier.verify(old)).outcome

    async def test_grace_never_outlives_the_key_expiry(self, svc, tenant):
        expires = to_datetime(svc.clock.now() + 100)
        key, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k", expires_at=expires))

        await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=1000)

        [retired] = [s for s in svc.db.secrets.values() if s.expires_at is not None]
        assert expires == retired.expires_at
        svc.clock.advance(100)
        assert Outcome.EXPIRED is (await svc.verifier.verify(old)).outcome

    async def test_third_secret_ends_the_oldest_grace_at_once(self, svc, tenant):
        key, first = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        _, second = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=100)
        svc.clock.advance(10)

        _, third = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=100)

        assert Outcome.EXPIRED is (await svc.verifier.verify(first)).outcome
        assert Outcome.VALID is (await svc.verifier.verify(second)).outcome
        assert Outcome.VALID is (await svc.verifier.verify(third)).outcome
        assert 2 == len(_live_secrets(svc, key.id))
        svc.clock.advance(100)
        assert Outcome.EXPIRED is (await svc.verifier.verify(second)).outcome
        assert 1 == len(_live_secrets(svc, key.id))

    async def test_many_rotations_never_leave_more_than_two_live_secrets(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))

        for _ in range(6):
            svc.clock.advance(1)
            await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=3600)
            assert len(_live_secrets(svc, key.id)) <= 2

        assert 7 == len([s for s in svc.db.secrets.values() if s.key_id == key.id])

    async def test_revoked_key_cannot_rotate(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")
        before = svc.db.snapshot()

        with pytest.raises(KeyAlreadyRevoked):
            await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        assert before == svc.db.snapshot()

    async def test_disabled_key_rotates_and_stays_disabled(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.keys.set_status(OPERATOR, tenant.id, key.id, "disable")

        rotated, new = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        assert KeyStatus.DISABLED is rotated.status
        assert Outcome.DISABLED is (await svc.verifier.verify(new)).outcome

    @pytest.mark.parametrize("grace", [0, MAX_GRACE_SECONDS], ids=["zero", "max"])
    async def test_grace_bounds_are_accepted(self, svc, tenant, grace):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))

        await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=grace)

        [retired] = [s for s in svc.db.secrets.values() if s.expires_at is not None]
        assert to_datetime(svc.clock.now()) + timedelta(seconds=grace) == retired.expires_at

    @pytest.mark.parametrize("grace", [-1, MAX_GRACE_SECONDS + 1], ids=["negative", "over-max"])
    async def test_grace_out_of_bounds_is_rejected(self, svc, tenant, grace):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="grace_seconds"):
            await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=grace)

        assert before == svc.db.snapshot()

    async def test_unknown_key_is_not_found(self, svc, tenant):
        with pytest.raises(KeyNotFound):
            await svc.keys.rotate(OPERATOR, tenant.id, "key_missing", grace_seconds=60)

    async def test_another_tenants_key_is_not_found_and_keeps_its_secret(
        self, svc, tenant, other_tenant
    ):
        theirs, secret = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="k"))

        with pytest.raises(KeyNotFound):
            await svc.keys.rotate(OPERATOR, tenant.id, theirs.id, grace_seconds=0)

        assert Outcome.VALID is (await svc.verifier.verify(secret)).outcome

    async def test_overlapping_rotations_in_one_process_let_one_win(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        outcomes: list[object] = []

        async def rotate():
            try:
                outcomes.append(
                    await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)
                )
            except ConcurrentUpdate as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(rotate)
            tg.start_soon(rotate)

        assert 1 == sum(isinstance(o, ConcurrentUpdate) for o in outcomes)
        assert 2 == len([s for s in svc.db.secrets.values() if s.key_id == key.id])

    async def test_concurrent_rotations_on_two_replicas_let_one_win(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        replica = build_services(db=svc.db, clock=svc.clock, peppers=svc.peppers)
        outcomes: list[object] = []

        async def rotate(service):
            try:
                outcomes.append(
                    await service.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)
                )
            except ConcurrentUpdate as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(rotate, svc)
            tg.start_soon(rotate, replica)

        assert 1 == sum(isinstance(o, ConcurrentUpdate) for o in outcomes)
        assert 2 == len([s for s in svc.db.secrets.values() if s.key_id == key.id])
        assert 2 == svc.db.keys[key.id].version


class TestDelete:
    async def test_deleted_key_verifies_as_not_found(self, svc, tenant):
        key, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.verifier.verify(secret)  # now cached

        await svc.keys.delete(OPERATOR, tenant.id, key.id)

        assert Outcome.NOT_FOUND is (await svc.verifier.verify(secret)).outcome
        assert key.id not in svc.db.keys
        assert [] == [s for s in svc.db.secrets.values() if s.key_id == key.id]

    async def test_deleting_twice_is_not_found(self, svc, tenant):
        key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await svc.keys.delete(OPERATOR, tenant.id, key.id)

        with pytest.raises(KeyNotFound):
            await svc.keys.delete(OPERATOR, tenant.id, key.id)

    async def test_deletes_every_secret_of_a_rotated_key(self, svc, tenant):
        key, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        _, new = await svc.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=60)

        await svc.keys.delete(OPERATOR, tenant.id, key.id)

        assert {} == svc.db.secrets
        assert Outcome.NOT_FOUND is (await svc.verifier.verify(old)).outcome
        assert Outcome.NOT_FOUND is (await svc.verifier.verify(new)).outcome

    async def test_another_tenants_key_is_not_found_and_survives(self, svc, tenant, other_tenant):
        theirs, secret = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="k"))

        with pytest.raises(KeyNotFound):
            await svc.keys.delete(OPERATOR, tenant.id, theirs.id)

        assert Outcome.VALID is (await svc.verifier.verify(secret)).outcome

    async def test_tenant_scoped_caller_cannot_delete_in_another_tenant(
        self, svc, tenant, other_tenant
    ):
        theirs, _ = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="k"))

        with pytest.raises(TenantNotFound):
            await svc.keys.delete(
                tenant_principal(tenant.id, P.KEYS_WRITE), other_tenant.id, theirs.id
            )

        assert theirs.id in svc.db.keys
