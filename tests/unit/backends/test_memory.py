import pytest

from keyrack.backends.memory import MemoryCache

A, B, C, D = b"a" * 32, b"b" * 32, b"c" * 32, b"d" * 32


def _cached(cache: MemoryCache[str], *digests: bytes) -> list[bytes]:
    return [d for d in digests if cache.get(d) is not None]


class TestMemoryCache:
    @pytest.mark.parametrize("size", [0, -1])
    def test_size_must_be_positive(self, size):
        with pytest.raises(ValueError, match="positive"):
            MemoryCache(size)

    def test_returns_value_and_expiry(self):
        cache: MemoryCache[str] = MemoryCache(4)

        cache.put(A, "record", owner="key_1", expires_at=10.0)

        assert ("record", 10.0) == cache.get(A)
        assert cache.get(B) is None

    def test_caches_misses_as_none(self):
        cache: MemoryCache[str] = MemoryCache(4)

        cache.put(A, None, owner=None, expires_at=2.0)

        assert (None, 2.0) == cache.get(A)

    def test_evicts_the_oldest_insertion_when_full(self):
        cache: MemoryCache[str] = MemoryCache(2)
        cache.put(A, "a", owner="o1", expires_at=1.0)
        cache.put(B, "b", owner="o2", expires_at=1.0)
        cache.get(A)  # a hit does not reorder

        cache.put(C, "c", owner=None, expires_at=1.0)

        assert [B, C] == _cached(cache, A, B, C)
        assert 2 == len(cache)

    def test_putting_an_existing_digest_replaces_it_and_makes_it_newest(self):
        cache: MemoryCache[str] = MemoryCache(2)
        cache.put(A, "a", owner=None, expires_at=1.0)
        cache.put(B, "b", owner=None, expires_at=1.0)

        cache.put(A, "a2", owner=None, expires_at=5.0)
        cache.put(C, "c", owner=None, expires_at=1.0)

        assert [A, C] == _cached(cache, A, B, C)
        assert ("a2", 5.0) == cache.get(A)

    def test_invalidate_drops_every_digest_of_the_owner_only(self):
        cache: MemoryCache[str] = MemoryCache(8)
        cache.put(A, "old secret", owner="key_1", expires_at=1.0)
        cache.put(B, "new secret", owner="key_1", expires_at=1.0)
        cache.put(C, "other", owner="key_2", expires_at=1.0)
        cache.put(D, None, owner=None, expires_at=1.0)

        cache.invalidate("key_1")

        assert [C, D] == _cached(cache, A, B, C, D)
        cache.invalidate("key_1")  # nothing left to drop
        cache.invalidate("never-seen")
        assert 2 == len(cache)

    def test_reput_under_another_owner_moves_the_digest(self):
        cache: MemoryCache[str] = MemoryCache(8)
        cache.put(A, "x", owner="key_1", expires_at=1.0)
        cache.put(B, "y", owner="key_1", expires_at=1.0)

        cache.put(A, "x", owner="key_2", expires_at=1.0)
        cache.invalidate("key_1")

        assert [A] == _cached(cache, A, B)
        cache.invalidate("key_2")
        assert 0 == len(cache)

    def test_reput_as_a_miss_drops_the_old_owner(self):
        cache: MemoryCache[str] = MemoryCache(8)
        cache.put(A, "x", owner="key_1", expires_at=1.0)

        cache.put(A, None, owner=None, expires_at=1.0)
        cache.invalidate("key_1")

        assert (None, 1.0) == cache.get(A)

    def test_evicted_entry_no_longer_belongs_to_its_owner(self):
        cache: MemoryCache[str] = MemoryCache(1)
        cache.put(A, "x", owner="key_1", expires_at=1.0)
        cache.put(B, "y", owner="key_2", expires_at=1.0)
        cache.put(A, "x", owner="key_3", expires_at=1.0)

        cache.invalidate("key_1")

        assert [A] == _cached(cache, A, B)

    def test_clear_drops_everything(self):
        cache: MemoryCache[str] = MemoryCache(8)
        cache.put(A, "x", owner="key_1", expires_at=1.0)
        cache.put(B, None, owner=None, expires_at=1.0)

        cache.clear()
        cache.put(C, "z", owner="key_1", expires_at=1.0)
        cache.invalidate("key_1")

        assert (0, []) == (len(cache), _cached(cache, A, B, C))
