import pytest

from keyrack.backends.memory import MemoryCache
from keyrack.services.clock import to_datetime
from keyrack.services.invalidation import EVERYTHING, CacheInvalidator
from tests.fakes import FakeClock, FakeDatabase, FakeUnitOfWork, FakeUnitOfWorkFactory

pytestmark = pytest.mark.anyio


class Replica:
    """One process's caches and invalidator over a shared fake database."""

    def __init__(self, db: FakeDatabase, clock: FakeClock) -> None:
        self.keys: MemoryCache[str] = MemoryCache(100)
        self.principals: MemoryCache[str] = MemoryCache(100)
        self.invalidator = CacheInvalidator(
            uow=FakeUnitOfWorkFactory(db), caches=[self.keys, self.principals], clock=clock
        )

    def fill(self, *owners: str) -> None:
        for owner in owners:
            self.keys.put(owner.encode(), "record", owner=owner, expires_at=1e12)
            self.principals.put(b"p" + owner.encode(), "principal", owner=owner, expires_at=1e12)

    def cached(self) -> list[str]:
        return sorted(
            owner
            for owner in ("key_1", "key_2", "key_3", "rk_1")
            if self.keys.get(owner.encode()) is not None
        )


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
async def replica(db, clock) -> Replica:
    replica = Replica(db, clock)
    await replica.invalidator.start()
    replica.fill("key_1", "key_2", "key_3", "rk_1")
    return replica


async def _record(db: FakeDatabase, clock: FakeClock, *owners: str) -> None:
    async with FakeUnitOfWork(db) as uow:
        await uow.invalidations.record(owners, at=to_datetime(clock.now()))
        await uow.commit()


class TestPoll:
    async def test_history_before_start_is_skipped(self, db, clock):
        await _record(db, clock, "key_1")
        replica = Replica(db, clock)
        await replica.invalidator.start()
        replica.fill("key_1")

        assert 0 == await replica.invalidator.poll()
        assert ["key_1"] == replica.cached()

    async def test_new_entries_drop_their_owners_from_every_cache(self, db, clock, replica):
        await _record(db, clock, "key_1", "rk_1")

        applied = await replica.invalidator.poll()

        assert 2 == applied
        assert ["key_2", "key_3"] == replica.cached()
        assert replica.principals.get(b"pkey_1") is None
        assert replica.principals.get(b"pkey_2") is not None
        assert 0 == await replica.invalidator.poll()

    async def test_everything_clears_whole_caches(self, db, clock, replica):
        await _record(db, clock, EVERYTHING)

        assert 1 == await replica.invalidator.poll()
        assert (0, 0) == (len(replica.keys), len(replica.principals))

    async def test_late_commit_below_the_newest_entry_is_applied(self, db, clock, replica):
        async with FakeUnitOfWork(db) as slow:
            await slow.invalidations.record(["key_1"], at=to_datetime(clock.now()))
            await _record(db, clock, "key_2")  # a later sequence number commits first
            assert 1 == await replica.invalidator.poll()
            await slow.commit()
        clock.advance(5)

        applied = await replica.invalidator.poll()

        assert 1 == applied
        assert ["key_3", "rk_1"] == replica.cached()

    async def test_gap_older_than_the_overlap_is_given_up(self, db, clock, replica):
        async with FakeUnitOfWork(db) as slow:
            await slow.invalidations.record(["key_1"], at=to_datetime(clock.now()))
            await _record(db, clock, "key_2")
            await replica.invalidator.poll()
            clock.advance(11)
            await replica.invalidator.poll()  # key_2's entry is settled: the floor passes the gap
            await slow.commit()

        assert 0 == await replica.invalidator.poll()
        assert ["key_1", "key_3", "rk_1"] == replica.cached()

    async def test_entries_keep_applying_after_the_floor_moves(self, db, clock, replica):
        await _record(db, clock, "key_1")
        await replica.invalidator.poll()
        clock.advance(11)
        await replica.invalidator.poll()
        await _record(db, clock, "key_2")

        assert 1 == await replica.invalidator.poll()
        assert ["key_3", "rk_1"] == replica.cached()


class TestPrune:
    async def test_deletes_entries_older_than_the_retention(self, db, clock, replica):
        await _record(db, clock, "key_1")
        clock.advance(3000)
        await _record(db, clock, "key_2")
        clock.advance(601)

        await replica.invalidator.prune()

        assert ["key_2"] == [owner for owner, _ in db.invalidations.values()]


class TestDeferredStart:
    async def test_a_start_without_database_is_completed_by_the_first_poll(self, db, clock):
        from keyrack.errors import BackendUnavailable

        replica = Replica(db, clock)
        db.unavailable = True
        await replica.invalidator.start()  # logs and defers instead of raising
        replica.fill("key_1")
        with pytest.raises(BackendUnavailable):
            await replica.invalidator.poll()
        db.unavailable = False
        assert 0 == await replica.invalidator.poll()
        # What was cached before the first successful poll may be stale: it is dropped.
        assert [] == replica.cached()
