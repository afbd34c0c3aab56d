"""In-process backends: the embedded default and the reference for every other backend."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class MemoryCache(Generic[T]):
    """A bounded dict cache by digest with per-owner invalidation.

    When full it evicts in insertion order (oldest first), which costs nothing on a hit, unlike
    an LRU's reordering; entries also expire by time, so hot keys are simply reloaded.
    """

    __slots__ = ("_entries", "_max_entries", "_owner_of", "_owners")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._entries: dict[bytes, tuple[T | None, float]] = {}
        self._owners: dict[str, set[bytes]] = {}
        self._owner_of: dict[bytes, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> tuple[T | None, float] | None:
        """``(value_or_None, expires_at)`` for a cached digest, or ``None``."""
        return self._entries.get(digest)

    def put(self, digest: bytes, value: T | None, *, owner: str | None, expires_at: float) -> None:
        """Cache a value or a miss until ``expires_at``, evicting the oldest entry when full."""
        if digest in self._entries:
            self._drop(digest)
        elif len(self._entries) >= self._max_entries:
            self._drop(next(iter(self._entries)))
        self._entries[digest] = (value, expires_at)
        if owner is not None:
            self._owners.setdefault(owner, set()).add(digest)
            self._owner_of[digest] = owner

    def _drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        owner = self._owner_of.pop(digest, None)
        if owner is not None:
            # Invariant: a digest with an owner is in that owner's set.
            digests = self._owners[owner]
            digests.discard(digest)
            if not digests:
                del self._owners[owner]

    def invalidate(self, owner: str) -> None:
        """Drop every entry owned by ``owner``."""
        for digest in self._owners.pop(owner, set()):
            self._entries.pop(digest, None)
            self._owner_of.pop(digest, None)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._owners.clear()
        self._owner_of.clear()
