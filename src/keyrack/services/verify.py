"""The verify hot path (DESIGN.md §4): parse, digest, cached lookup, ordered checks.

A warm verify does no I/O at all: one HMAC, one dict lookup, a few comparisons and a dict
write for the write-behind ``last_used_at``. A cold verify is one database query that loads
every field the checks need, for the presented key's digest under every pepper version.
"""

from __future__ import annotations

import logging

from keyrack.domain import keys as keyformat
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import KeyRecord
from keyrack.domain.verification import NOT_FOUND, Outcome, VerifyResult, check_state
from keyrack.errors import BackendUnavailable
from keyrack.services.ports import Cache, Clock, Rehash, UnitOfWorkFactory
from keyrack.services.writebehind import WriteBehind

logger = logging.getLogger(__name__)


class VerifyService:
    """Answers whether a presented API key may be used, and with what identity and rights."""

    __slots__ = (
        "_cache",
        "_clock",
        "_negative_ttl",
        "_peppers",
        "_positive_ttl",
        "_stale_if_error",
        "_uow",
        "_writes",
    )

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        cache: Cache[KeyRecord],
        peppers: Peppers,
        clock: Clock,
        writes: WriteBehind,
        positive_ttl: float = 30.0,
        negative_ttl: float = 2.0,
        stale_if_error: float = 300.0,
    ) -> None:
        self._uow = uow
        self._cache = cache
        self._peppers = peppers
        self._clock = clock
        self._writes = writes
        self._positive_ttl = positive_ttl
        self._negative_ttl = negative_ttl
        self._stale_if_error = stale_if_error

    async def verify(self, presented: str, *, tenant_scope: str | None = None) -> VerifyResult:
        """Verify ``presented`` for a caller scoped to ``tenant_scope`` (``None``: platform).

        Args:
            presented: The key exactly as the end user sent it (any string).
            tenant_scope: The caller's tenant; another tenant's key answers ``NOT_FOUND``.

        Returns:
            The outcome and, when the key exists for this caller, its record.

        Raises:
            BackendUnavailable: The key is not cached and the database cannot be reached.
        """
        if not keyformat.is_well_formed(presented) or keyformat.is_root_key(presented):
            return NOT_FOUND
        digest = self._peppers.digest(presented)
        now = self._clock.now()
        entry = self._cache.get(digest)
        if entry is not None and entry[1] > now:
            record = entry[0]
        else:
            record = await self._load(presented, digest, now, stale=entry)
        if record is None or (tenant_scope is not None and record.tenant_id != tenant_scope):
            return NOT_FOUND
        outcome = check_state(record, now=now)
        if outcome is Outcome.VALID:
            self._writes.touch(record.tenant_id, record.key_id, now)
        return VerifyResult(outcome, record)

    async def _load(
        self,
        presented: str,
        digest: bytes,
        now: float,
        *,
        stale: tuple[KeyRecord | None, float] | None,
    ) -> KeyRecord | None:
        digests = self._peppers.all_digests(presented)
        try:
            async with self._uow() as uow:
                record = await uow.secrets.find(list(digests))
        except BackendUnavailable:
            if stale is not None and now < stale[1] + self._stale_if_error:
                logger.warning("verify.stale_cache_used")
                return stale[0]
            raise
        if record is None:
            self._cache.put(digest, None, owner=None, expires_at=now + self._negative_ttl)
            return None
        keyformat.remember_prefix(presented)
        if record.pepper_version != self._peppers.current_version:
            self._writes.rehash(
                Rehash(
                    tenant_id=record.tenant_id,
                    secret_id=record.secret_id,
                    digest=digest,
                    pepper_version=self._peppers.current_version,
                )
            )
        self._cache.put(digest, record, owner=record.key_id, expires_at=now + self._positive_ttl)
        return record
