"""Cross-process cache invalidation through the database (a transactional outbox).

Every change that must reach other processes' verify caches writes the changed object's id to
an invalidation log in the same transaction as the change. Each process polls the log every
``poll_interval`` (100 ms by default) and drops those ids from its caches, so a revoke made on
one replica, or by the CLI, is seen by every replica's next verify within about one poll —
with or without Redis, and without losing an invalidation to a dropped connection.

Sequence numbers can commit out of order (two concurrent transactions on PostgreSQL); the
poller re-reads a short window below the newest sequence it has seen, so a late commit within
``overlap_seconds`` is still applied. The cache TTL bounds anything later than that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from keyrack.errors import BackendUnavailable
from keyrack.services.clock import to_datetime
from keyrack.services.ports import Cache, Clock, UnitOfWorkFactory

logger = logging.getLogger(__name__)

EVERYTHING: Final = "*"
"""The owner id that clears whole caches (a tenant deletion)."""

BATCH: Final = 1000


class CacheInvalidator:
    """Applies the invalidation log of every process to this process's caches."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        caches: Sequence[Cache[Any]],
        clock: Clock,
        overlap_seconds: float = 10.0,
        retention_seconds: float = 3600.0,
    ) -> None:
        self._uow = uow
        self._caches = tuple(caches)
        self._clock = clock
        self._overlap = overlap_seconds
        self._retention = retention_seconds
        self._floor = 0
        self._seen: dict[int, float] = {}
        self._started = False

    async def start(self) -> None:
        """Skip the history: the caches are empty when a process starts.

        If the database cannot be reached yet, the first successful ``poll`` does this instead
        (nothing is cached before then, so nothing can be stale).
        """
        try:
            async with self._uow() as uow:
                self._floor = await uow.invalidations.head()
        except BackendUnavailable:
            logger.warning("invalidation.start_deferred")
            return
        self._started = True

    def apply(self, owners: Sequence[str]) -> None:
        """Drop ``owners`` (or everything, for ``EVERYTHING``) from every cache."""
        for owner in owners:
            for cache in self._caches:
                if owner == EVERYTHING:
                    cache.clear()
                else:
                    cache.invalidate(owner)

    async def poll(self) -> int:
        """Apply new log entries, and late commits below the newest one; returns the count.

        Raises:
            BackendUnavailable: The database cannot be reached; the next poll retries.
        """
        if not self._started:
            async with self._uow() as uow:
                self._floor = await uow.invalidations.head()
            self._started = True
            # Anything cached before now may predate changes we skipped: start clean.
            self.apply([EVERYTHING])
            return 0
        now = self._clock.now()
        top = max(self._seen, default=self._floor)
        gaps = [seq for seq in range(self._floor + 1, top) if seq not in self._seen][:BATCH]
        async with self._uow() as uow:
            rows = await uow.invalidations.since(top, limit=BATCH)
            late = await uow.invalidations.among(gaps) if gaps else []
        fresh = [(seq, owner) for seq, owner in rows + late if seq not in self._seen]
        for seq, _ in fresh:
            self._seen[seq] = now
        self.apply([owner for _, owner in fresh])
        settled = [seq for seq, seen_at in self._seen.items() if seen_at < now - self._overlap]
        if settled:
            self._floor = max(self._floor, *settled)
            for seq in [s for s in self._seen if s <= self._floor]:
                del self._seen[seq]
        return len(fresh)

    async def prune(self) -> None:
        """Delete log entries older than the retention period."""
        async with self._uow() as uow:
            await uow.invalidations.prune(before=to_datetime(self._clock.now() - self._retention))
            await uow.commit()
