"""Write-behind of what verify learns: ``last_used_at`` and pepper upgrades.

Verify only records into dicts (no I/O on the hot path); a background task flushes them in one
batched transaction every few seconds and once more on shutdown.
"""

from __future__ import annotations

import logging

from keyrack.errors import BackendUnavailable
from keyrack.services.clock import to_datetime
from keyrack.services.ports import LastUsed, Rehash, RootRehash, UnitOfWorkFactory

logger = logging.getLogger(__name__)

MAX_PENDING = 1_000_000


class WriteBehind:
    """Buffers verify's deferred writes and flushes them in batches."""

    __slots__ = ("_last_used", "_rehashes", "_root_rehashes", "_uow")

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow
        self._last_used: dict[str, tuple[str, float]] = {}
        self._rehashes: dict[str, Rehash] = {}
        self._root_rehashes: dict[str, RootRehash] = {}

    def touch(self, tenant_id: str, key_id: str, now: float) -> None:
        """Remember that ``key_id`` was used at ``now`` (latest wins)."""
        if len(self._last_used) < MAX_PENDING:
            self._last_used[key_id] = (tenant_id, now)

    def rehash(self, item: Rehash) -> None:
        """Schedule a secret's digest upgrade to the current pepper."""
        self._rehashes[item.secret_id] = item

    def rehash_root(self, item: RootRehash) -> None:
        """Schedule a root key's digest upgrade to the current pepper."""
        self._root_rehashes[item.root_key_id] = item

    @property
    def pending(self) -> int:
        """How many writes wait for the next flush."""
        return len(self._last_used) + len(self._rehashes) + len(self._root_rehashes)

    async def flush(self) -> int:
        """Write everything pending in one transaction; on failure keep it for the next try.

        Returns:
            The number of rows written.
        """
        if not self.pending:
            return 0
        last_used, self._last_used = self._last_used, {}
        rehashes, self._rehashes = self._rehashes, {}
        root_rehashes, self._root_rehashes = self._root_rehashes, {}
        items = [
            LastUsed(tenant_id=tenant, key_id=key_id, at=to_datetime(at))
            for key_id, (tenant, at) in last_used.items()
        ]
        try:
            async with self._uow() as uow:
                if items:
                    await uow.usage.write_last_used(items)
                if rehashes:
                    await uow.usage.write_rehashes(list(rehashes.values()))
                if root_rehashes:
                    await uow.usage.write_root_rehashes(list(root_rehashes.values()))
                await uow.commit()
        except BackendUnavailable:
            count = len(items) + len(rehashes) + len(root_rehashes)
            logger.warning("writebehind.flush_failed", extra={"pending": count})
            for key_id, value in last_used.items():
                self._last_used.setdefault(key_id, value)
            for secret_id, item in rehashes.items():
                self._rehashes.setdefault(secret_id, item)
            for root_key_id, root_item in root_rehashes.items():
                self._root_rehashes.setdefault(root_key_id, root_item)
            return 0
        return len(items) + len(rehashes) + len(root_rehashes)
