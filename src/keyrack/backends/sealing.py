"""AES-256-GCM sealing of secrets that must be shown again, under versioned master keys.

This is the interim ``SecretSealer`` of issue 4 (system keys): it encrypts directly under the
master key from configuration. Issue 5 backs the same port with per-tenant data keys wrapped
by the master key; its rows will carry a different format byte, so both can be read while
rows are rewrapped.

Sealed layout (all integers big-endian)::

    format (1 byte, 0x01) | key version (uint32) | nonce (12 random bytes) | ciphertext + tag (16)

The associated data is the format byte and key version followed by the tenant id and the
object id, each as a uint32 byte length then its UTF-8 bytes; so a row copied to another tenant
or object, or split differently between the two ids, fails to open.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyrack.errors import ConfigurationError, SecretUnreadable
from keyrack.services.ports import Entropy

__all__ = ["FORMAT_AES_GCM_MASTER", "AesGcmSealer"]

FORMAT_AES_GCM_MASTER: Final = 0x01
"""The format byte of a secret sealed directly under a master key."""

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
_HEADER: Final = struct.Struct(">BI")
_LENGTH: Final = struct.Struct(">I")
_MAX_VERSION: Final = 2**32 - 1
_MIN_SEALED: Final = _HEADER.size + NONCE_BYTES + TAG_BYTES

# Lone surrogates (legal in a Python str, and in JSON as "\ud800") are encoded rather than
# refused: a UnicodeEncodeError would carry the whole plaintext in its ``object``.
_ERRORS: Final = "surrogatepass"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", _ERRORS)


def _associated_data(header: bytes, *, tenant_id: str, object_id: str) -> bytes:
    tenant = _utf8(tenant_id)
    obj = _utf8(object_id)
    return b"".join((header, _LENGTH.pack(len(tenant)), tenant, _LENGTH.pack(len(obj)), obj))


class AesGcmSealer:
    """The ``SecretSealer`` port: AES-256-GCM under the newest of the configured master keys.

    The highest version seals; every configured version opens, so a new master key can be
    added while older rows stay readable. A version whose key is no longer configured is
    retired: its rows answer ``SecretUnreadable``.

    Args:
        master_keys: Version (1 … 2**32-1) to its 32-byte key, as ``Secrets.master_keys``.
        entropy: The nonce source; ``secrets.token_bytes`` unless a test injects one.

    Raises:
        ConfigurationError: No key is given, a version is out of range, or a key is not
            32 bytes. The message names the version, never the key.
    """

    __slots__ = ("_aeads", "_current", "_entropy")

    def __init__(
        self, master_keys: Mapping[int, bytes], *, entropy: Entropy = secrets.token_bytes
    ) -> None:
        if not master_keys:
            raise ConfigurationError("no master keys configured")
        aeads: dict[int, AESGCM] = {}
        for version, key in master_keys.items():
            if not 1 <= version <= _MAX_VERSION:
                raise ConfigurationError(f"master key version {version} is out of range")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"master key version {version} must be exactly {KEY_BYTES} bytes"
                )
            aeads[version] = AESGCM(key)
        self._aeads = aeads
        self._current = max(aeads)
        self._entropy = entropy

    def __repr__(self) -> str:
        return f"AesGcmSealer(versions={sorted(self._aeads)!r}, current={self._current})"

    @property
    def current_version(self) -> int:
        """The master key version new secrets are sealed under."""
        return self._current

    def seal(self, plaintext: str, *, tenant_id: str, object_id: str) -> bytes:
        """Encrypt ``plaintext`` under the current master key, bound to its tenant and object."""
        header = _HEADER.pack(FORMAT_AES_GCM_MASTER, self._current)
        nonce = self._entropy(NONCE_BYTES)
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"entropy must return {NONCE_BYTES} bytes")
        ad = _associated_data(header, tenant_id=tenant_id, object_id=object_id)
        return header + nonce + self._aeads[self._current].encrypt(nonce, _utf8(plaintext), ad)

    def open(self, sealed: bytes, *, tenant_id: str, object_id: str) -> str:
        """Decrypt a secret sealed for this tenant and object.

        Raises:
            SecretUnreadable: The input is truncated or not in this format, its key version is
                not configured (unknown or retired), or authentication fails (tampered bytes,
                another tenant or object id, another key).
        """
        if len(sealed) < _MIN_SEALED:
            raise SecretUnreadable("a stored secret is truncated")
        header = bytes(sealed[: _HEADER.size])
        form, version = _HEADER.unpack(header)
        if form != FORMAT_AES_GCM_MASTER:
            raise SecretUnreadable("a stored secret is not in a format this sealer reads")
        aead = self._aeads.get(version)
        if aead is None:
            raise SecretUnreadable(
                "a stored secret was sealed under a master key version that is not configured",
                key_version=version,
            )
        nonce = sealed[_HEADER.size : _HEADER.size + NONCE_BYTES]
        ad = _associated_data(header, tenant_id=tenant_id, object_id=object_id)
        try:
            plaintext = aead.decrypt(nonce, sealed[_HEADER.size + NONCE_BYTES :], ad)
        except InvalidTag as exc:
            raise SecretUnreadable() from exc
        try:
            return plaintext.decode("utf-8", _ERRORS)
        except UnicodeDecodeError:
            # Authentic but not sealed by ``seal``; the decode error would hold the plaintext.
            raise SecretUnreadable("a stored secret is not text") from None
