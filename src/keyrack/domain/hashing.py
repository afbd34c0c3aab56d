"""Key digests: HMAC-SHA256 under a versioned server pepper (DESIGN.md §3).

Keys carry at least 160 random bits, so a fast keyed hash is the right tool: a slow password
hash would buy nothing and cost milliseconds per verify. The pepper's HMAC state is keyed once
and copied per digest, which halves the cost of ``hmac.new`` on the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, Protocol


class _Mac(Protocol):
    def copy(self) -> _Mac: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


try:
    # OpenSSL's HMAC object itself, without hmac.py's pure-Python wrapper around it: copying it
    # costs half as much, and this runs twice per HTTP verify (root key and end-user key).
    from _hashlib import hmac_new as _openssl_hmac_new

    def _keyed(pepper: bytes) -> _Mac:
        mac: _Mac = _openssl_hmac_new(pepper, digestmod="sha256")
        return mac

except ImportError:  # pragma: no cover - CPython built without OpenSSL

    def _keyed(pepper: bytes) -> _Mac:
        return hmac.new(pepper, digestmod=hashlib.sha256)


MIN_PEPPER_BYTES: Final = 32


class Peppers:
    """A versioned set of peppers; the highest version is current.

    Never holds or returns a presented key; ``repr`` shows versions only.
    """

    __slots__ = ("_keyed", "current_version", "versions")

    def __init__(self, peppers: Mapping[int, bytes]) -> None:
        if not peppers:
            raise ValueError("at least one pepper is required")
        for version, pepper in peppers.items():
            if version < 1:
                raise ValueError("pepper versions start at 1")
            if len(pepper) < MIN_PEPPER_BYTES:
                raise ValueError(f"pepper {version} is shorter than {MIN_PEPPER_BYTES} bytes")
        self.versions: tuple[int, ...] = tuple(sorted(peppers, reverse=True))
        self.current_version: int = self.versions[0]
        self._keyed = {v: _keyed(peppers[v]) for v in self.versions}

    def __repr__(self) -> str:
        return f"Peppers(versions={self.versions!r})"

    def digest(self, key: str, version: int | None = None) -> bytes:
        """HMAC-SHA256 of ``key`` under the pepper ``version`` (default: current)."""
        mac = self._keyed[self.current_version if version is None else version].copy()
        mac.update(key.encode())
        return mac.digest()

    def all_digests(self, key: str) -> dict[bytes, int]:
        """The digest of ``key`` under every known pepper, mapped to its version."""
        return {self.digest(key, v): v for v in self.versions}
