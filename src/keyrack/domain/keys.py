"""The API key format (DESIGN.md §3): ``{prefix}_{random}{checksum}``.

``prefix`` is ``[a-z][a-z0-9]{1,15}`` with an optional ``_env`` part (``sk_live``); the body is
base62: 33 random digits (192 bits) then a 6-digit base62 CRC32 of everything before it, prefix
and underscore included. A key whose checksum fails is rejected here, before any store is asked.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Final

from keyrack.domain.base62 import ALPHABET, encode_fixed

RANDOM_BYTES: Final = 24
RANDOM_DIGITS: Final = 33  # 62**33 > 2**192
CHECKSUM_DIGITS: Final = 6  # 62**6 > 2**32
START_DIGITS: Final = 4
ROOT_PREFIX: Final = "krroot"
RESERVED_PREFIXES: Final = frozenset({ROOT_PREFIX, "krses", "krimp", "krpat", "krinv"})
"""Prefixes of keyrack's own credentials (root keys, user sessions and tokens, invitations)."""
DEFAULT_PREFIX: Final = "kr"
_BODY_DIGITS: Final = RANDOM_DIGITS + CHECKSUM_DIGITS
MAX_KEY_LENGTH: Final = 33 + 1 + _BODY_DIGITS

_PREFIX_PATTERN: Final = r"[a-z][a-z0-9]{1,15}(?:_[a-z][a-z0-9]{1,15})?"
_PREFIX_RE: Final = re.compile(_PREFIX_PATTERN)
_KEY_RE: Final = re.compile(
    rf"({_PREFIX_PATTERN})_[0-9A-Za-z]{{{RANDOM_DIGITS + CHECKSUM_DIGITS}}}"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A presented key that has the right shape and a valid checksum.

    ``start`` is the prefix and the first four body digits, safe to display and log.
    """

    prefix: str
    start: str

    def __repr__(self) -> str:
        return f"ParsedKey(prefix={self.prefix!r}, start={self.start!r})"


def is_valid_prefix(prefix: str) -> bool:
    """Tell whether ``prefix`` may be used as a tenant's key prefix."""
    if _PREFIX_RE.fullmatch(prefix) is None:
        return False
    return prefix.split("_", 1)[0] not in RESERVED_PREFIXES


# Every two-digit base62 string, so a 6-digit checksum is three lookups (62**2 == 3844).
_PAIRS: Final = tuple(a + b for a in ALPHABET for b in ALPHABET)
# Prefixes of keys that were found in a store: a set lookup instead of a regex on the hot path.
# Only ``remember_prefix`` adds to it (verify calls it for found keys), so made-up prefixes can
# neither fill it nor evict real ones; it is bounded all the same.
_KNOWN_PREFIXES: set[str] = set()
_KNOWN_PREFIXES_MAX: Final = 4096


def _checksum(head: str) -> str:
    # Base62 of a 32-bit CRC, two digits per lookup: this runs on every verify.
    n = zlib.crc32(head.encode())
    pairs = _PAIRS
    return pairs[n // 14776336 % 3844] + pairs[n // 3844 % 3844] + pairs[n % 3844]


def generate(prefix: str, *, entropy: bytes) -> str:
    """Render a new key from ``RANDOM_BYTES`` bytes of entropy.

    Args:
        prefix: A prefix accepted by ``is_valid_prefix`` (or ``ROOT_PREFIX``).
        entropy: Random bytes from the injected source (``secrets.token_bytes``).

    Returns:
        The full key; it exists in plaintext only until it is shown once.
    """
    if len(entropy) != RANDOM_BYTES:
        raise ValueError("entropy must be exactly RANDOM_BYTES long")
    if _PREFIX_RE.fullmatch(prefix) is None:
        raise ValueError("invalid key prefix")
    head = f"{prefix}_{encode_fixed(int.from_bytes(entropy, 'big'), RANDOM_DIGITS)}"
    return head + _checksum(head)


def is_well_formed(text: str) -> bool:
    """Tell, cheaply, whether ``text`` has a key's shape and a valid checksum.

    Equivalent to ``parse(text) is not None``; written with string methods instead of the
    full regex because it runs on every verify.
    """
    if len(text) > MAX_KEY_LENGTH:
        return False
    prefix, sep, body = text.rpartition("_")
    if not sep or len(body) != _BODY_DIGITS or not (body.isascii() and body.isalnum()):
        return False
    if prefix not in _KNOWN_PREFIXES and _PREFIX_RE.fullmatch(prefix) is None:
        return False
    return _checksum(text[:-CHECKSUM_DIGITS]) == body[RANDOM_DIGITS:]


def remember_prefix(key: str) -> None:
    """Note the prefix of a well-formed key that exists, so later checks skip the regex."""
    prefix = key.rpartition("_")[0]
    if len(_KNOWN_PREFIXES) < _KNOWN_PREFIXES_MAX and _PREFIX_RE.fullmatch(prefix):
        _KNOWN_PREFIXES.add(prefix)


def parse(text: str) -> ParsedKey | None:
    """Parse a presented key; ``None`` when its shape or checksum is wrong."""
    if len(text) > MAX_KEY_LENGTH:
        return None
    match = _KEY_RE.fullmatch(text)
    if match is None or _checksum(text[:-CHECKSUM_DIGITS]) != text[-CHECKSUM_DIGITS:]:
        return None
    prefix = match.group(1)
    return ParsedKey(prefix=prefix, start=text[: len(prefix) + 1 + START_DIGITS])


def display_start(key: str) -> str:
    """The displayable start of a well-formed key: prefix, underscore and four digits."""
    head, _, body = key.rpartition("_")
    return f"{head}_{body[:START_DIGITS]}"


def is_root_key(text: str) -> bool:
    """Tell whether ``text`` is shaped as a root (management) key."""
    return text.startswith(ROOT_PREFIX + "_")
