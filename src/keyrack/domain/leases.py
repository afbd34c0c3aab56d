"""Concurrency lease ids: who a lease belongs to, readable from the id alone.

``POST /v1/leases/{lease_id}/release`` has nothing but the id, yet must find the lease's
counters (stored under the tenant's namespace, in the key's slot) and refuse a caller of
another tenant. So the id carries both: ``lse_`` + the tenant id's body + the key id's body
+ 16 base62 characters holding 88 random bits. The random part makes ids unguessable; the rest is
not secret (the verify response that returns a lease also names the key and the tenant).
"""

from __future__ import annotations

import re
from typing import Final

from keyrack.domain.base62 import encode_fixed

__all__ = ["ENTROPY_BYTES", "new_lease_id", "parse_lease_id"]

ENTROPY_BYTES: Final = 11
_RANDOM_WIDTH: Final = 16
_ID_BODY: Final = 22
_LEASE_RE: Final = re.compile(r"lse_([0-9A-Za-z]{22})([0-9A-Za-z]{22})[0-9A-Za-z]{16}")


def new_lease_id(tenant_id: str, key_id: str, entropy: bytes) -> str:
    """Build a lease id for a key of a tenant from ``ENTROPY_BYTES`` random bytes.

    Raises:
        ValueError: An id is not a ``ten_…`` / ``key_…`` id, or the entropy has the wrong size.
    """
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError("entropy must be exactly ENTROPY_BYTES long")
    tenant_body, key_body = tenant_id[4:], key_id[4:]
    if not (
        tenant_id.startswith("ten_")
        and key_id.startswith("key_")
        and len(tenant_body) == len(key_body) == _ID_BODY
    ):
        raise ValueError("expected a tenant id and a key id")
    random = encode_fixed(int.from_bytes(entropy, "big"), _RANDOM_WIDTH)
    return f"lse_{tenant_body}{key_body}{random}"


def parse_lease_id(lease_id: str) -> tuple[str, str] | None:
    """The ``(tenant_id, key_id)`` a lease id names, or ``None`` if it is not a lease id."""
    match = _LEASE_RE.fullmatch(lease_id)
    if match is None:
        return None
    return "ten_" + match.group(1), "key_" + match.group(2)
