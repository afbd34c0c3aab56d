"""The production clock and entropy source (tests inject fakes)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime


class SystemClock:
    """Wall-clock time in epoch seconds."""

    __slots__ = ()

    def now(self) -> float:
        """Epoch seconds from ``time.time``."""
        return time.time()


def system_entropy(size: int) -> bytes:
    """Cryptographically random bytes from ``secrets``."""
    return secrets.token_bytes(size)


def to_datetime(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(moment: datetime) -> float:
    """An aware datetime as epoch seconds."""
    return moment.timestamp()
