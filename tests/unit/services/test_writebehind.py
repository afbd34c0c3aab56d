import logging

import pytest

from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from keyrack.services.ports import Rehash
from keyrack.services.writebehind import MAX_PENDING, WriteBehind
from tests.fakes import FakeDatabase, FakeUnitOfWork, FakeUnitOfWorkFactory

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


@pytest.fixture
async def two_keys(svc, tenant):
    first, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="a"))
    second, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="b"))
    return first, second


class TestTouch:
    def test_latest_use_of_a_key_wins(self):
        writes = WriteBehind(FakeUnitOfWorkFactory(FakeDatabase()))

        writes.touch("ten_1", "key_1", T0)
        writes.touch("ten_1", "key_1", T0 + 5)

        assert 1 == writes.pending

    def test_new_keys_are_dropped_when_the_buffer_is_full(self):
        """The buffer is bounded: once full, uses of further keys wait for the next verify."""

        class Full(
            dict[str, tuple[str, float]]
        ):  # a buffer that reports itself full without holding a million items
            def __len__(self):
                return MAX_PENDING

        writes = WriteBehind(FakeUnitOfWorkFactory(FakeDatabase()))
        writes._last_used = Full()

        writes.touch("ten_1", "key_1", T0)

        assert {} == dict(writes._last_used)


class TestFlush:
    async def test_nothing_pending_writes_nothing_and_opens_no_transaction(self, svc):
        assert 0 == await svc.writes.flush()
        assert 0 == svc.uow.opened

    async def test_writes_everything_in_one_committed_transaction(self, svc, tenant, two_keys):
        first, second = two_keys
        secret_id = next(iter(svc.db.secrets))
        opened = svc.uow.opened
        svc.writes.touch(tenant.id, first.id, T0 + 1)
        svc.writes.touch(tenant.id, second.id, T0 + 2)
        svc.writes.touch(tenant.id, first.id, T0 + 3)
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"d" * 32, pepper_version=2)
        )

        written = await svc.writes.flush()

        assert 3 == written
        assert opened + 1 == svc.uow.opened
        assert svc.uow.units[-1].committed
        assert to_datetime(T0 + 3) == svc.db.keys[first.id].last_used_at
        assert to_datetime(T0 + 2) == svc.db.keys[second.id].last_used_at
        assert (b"d" * 32, 2) == (
            svc.db.secrets[secret_id].digest,
            svc.db.secrets[secret_id].pepper_version,
        )
        assert 0 == svc.writes.pending

    async def test_rehashes_alone_are_written(self, svc, tenant, two_keys):
        secret_id = next(iter(svc.db.secrets))
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"e" * 32, pepper_version=3)
        )

        assert 1 == await svc.writes.flush()
        assert 3 == svc.db.secrets[secret_id].pepper_version

    async def test_keeps_everything_when_the_database_is_down(self, svc, tenant, two_keys, caplog):
        first, _ = two_keys
        secret_id = next(iter(svc.db.secrets))
        svc.writes.touch(tenant.id, first.id, T0 + 1)
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"d" * 32, pepper_version=2)
        )
        svc.db.unavailable = True

        with caplog.at_level(logging.WARNING):
            written = await svc.writes.flush()

        assert 0 == written
        assert 2 == svc.writes.pending
        assert ["writebehind.flush_failed"] == [r.getMessage() for r in caplog.records]
        svc.db.unavailable = False
        assert 2 == await svc.writes.flush()
        assert to_datetime(T0 + 1) == svc.db.keys[first.id].last_used_at

    async def test_a_use_recorded_during_a_failed_flush_is_kept_over_the_older_one(self, svc):
        db = svc.db
        writes: WriteBehind

        def failing_uow() -> FakeUnitOfWork:
            writes.touch("ten_1", "key_1", T0 + 9)  # a verify lands while the flush runs
            db.unavailable = True
            return FakeUnitOfWork(db)

        writes = WriteBehind(failing_uow)
        writes.touch("ten_1", "key_1", T0)
        writes.touch("ten_1", "key_2", T0)

        assert 0 == await writes.flush()
        db.unavailable = False
        writes._uow = FakeUnitOfWorkFactory(db)

        assert {"key_1": ("ten_1", T0 + 9), "key_2": ("ten_1", T0)} == writes._last_used

    async def test_other_errors_propagate(self, svc):
        def broken() -> FakeUnitOfWork:
            raise RuntimeError("bug")

        writes = WriteBehind(broken)
        writes.touch("ten_1", "key_1", T0)

        with pytest.raises(RuntimeError):
            await writes.flush()


class TestRootRehash:
    async def test_a_root_rehash_survives_a_failed_flush_and_lands_after(self, svc):
        from keyrack.services.ports import RootRehash

        root = await svc.accounts.bootstrap()
        assert root is not None
        [stored] = svc.db.root_keys.values()
        item = RootRehash(
            tenant_id=None,
            root_key_id=stored.root_key.id,
            digest=b"r" * 32,
            pepper_version=7,
        )
        assert "digest" not in repr(item)
        svc.writes.rehash_root(item)
        svc.db.unavailable = True
        assert 0 == await svc.writes.flush()
        assert 1 == svc.writes.pending
        svc.db.unavailable = False
        assert 1 == await svc.writes.flush()
        assert 7 == svc.db.root_keys[stored.root_key.id].pepper_version
