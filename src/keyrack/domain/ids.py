"""Object identifiers: a type prefix plus a time-ordered, random base62 body.

Ids sort by creation time (48-bit millisecond timestamp first), so cursor pagination can
order by id alone.
"""

from __future__ import annotations

import re
from typing import Final, NewType

from keyrack.domain.base62 import encode_fixed

TenantId = NewType("TenantId", str)
KeyId = NewType("KeyId", str)

ENTROPY_BYTES: Final = 10
_BODY_LEN: Final = 22  # base62 width of 48 time bits + 80 random bits
_ID_RE: Final = re.compile(r"[a-z]{2,6}_[0-9A-Za-z]{22}")


def new_id(prefix: str, *, now_ms: int, entropy: bytes) -> str:
    """Build an id such as ``key_0B3x…`` from a timestamp and random bytes.

    Args:
        prefix: The object type (``key``, ``ten``, ``sa``, ``rk``, ``sec``).
        now_ms: Milliseconds since the epoch from the injected clock.
        entropy: ``ENTROPY_BYTES`` random bytes from the injected source.

    Returns:
        The id; ids made later sort after ids made earlier.
    """
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError("entropy must be exactly ENTROPY_BYTES long")
    number = ((now_ms & 0xFFFF_FFFF_FFFF) << 80) | int.from_bytes(entropy, "big")
    return f"{prefix}_{encode_fixed(number, _BODY_LEN)}"


def looks_like_id(text: str, prefix: str) -> bool:
    """Tell whether ``text`` has the shape of an id of type ``prefix`` (for cursors)."""
    return text.startswith(prefix + "_") and _ID_RE.fullmatch(text) is not None
