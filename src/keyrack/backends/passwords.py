"""Password hashing with argon2id (argon2-cffi), off the event loop.

Passwords are for humans logging in (issue 4); API keys never go through here: they are
high-entropy and hashed with a peppered HMAC on the verify path (DESIGN.md §3).
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Final, Self

import anyio.to_thread
import argon2
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["Argon2PasswordHasher"]

# argon2-cffi encodes a str password as strict UTF-8, which raises on a lone surrogate (JSON can
# carry one as "\ud800") and keeps the whole password in the UnicodeEncodeError. "surrogatepass"
# encodes every str; for every str strict UTF-8 accepts it gives the same bytes, so hashes stay
# interchangeable with plain argon2-cffi.
_ENCODING: Final = "utf-8"
_ERRORS: Final = "surrogatepass"


def _encode(password: str) -> bytes:
    return password.encode(_ENCODING, _ERRORS)


class Argon2PasswordHasher:
    """The ``PasswordHasher`` port over argon2-cffi's argon2id.

    The defaults are argon2-cffi's own, RFC 9106's low-memory profile (3 passes over 64 MiB,
    4 lanes). ``hash`` and ``verify`` run in a worker thread so the event loop keeps serving;
    at most ``max_concurrency`` of them run at once, which bounds the memory they take
    (``memory_cost`` KiB each) however many logins arrive together.

    Args:
        time_cost: Passes over the memory.
        memory_cost: Memory per hash, in KiB.
        parallelism: Lanes (threads) per hash.
        max_concurrency: Hashes computed at the same time; later calls wait their turn in
            their worker thread. Defaults to the number of CPUs.

    Raises:
        ValueError: ``max_concurrency`` is less than 1.
    """

    __slots__ = ("_dummy", "_dummy_lock", "_hasher", "_slots")

    def __init__(
        self,
        *,
        time_cost: int = argon2.DEFAULT_TIME_COST,
        memory_cost: int = argon2.DEFAULT_MEMORY_COST,
        parallelism: int = argon2.DEFAULT_PARALLELISM,
        max_concurrency: int | None = None,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._slots = threading.BoundedSemaphore(max_concurrency or os.cpu_count() or 1)
        # Made on first need (in a worker thread), not here: building a hasher stays cheap for
        # CLI commands that never verify a password.
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    @classmethod
    def for_tests(cls) -> Self:
        """A hasher with argon2's smallest parameters: for tests only, it protects nothing."""
        return cls(time_cost=1, memory_cost=8, parallelism=1)

    def __repr__(self) -> str:
        params = self._hasher
        return (
            f"Argon2PasswordHasher(time_cost={params.time_cost}, "
            f"memory_cost={params.memory_cost}, parallelism={params.parallelism})"
        )

    async def hash(self, password: str) -> str:
        """Hash a new password with a fresh random salt (PHC string format)."""
        return await anyio.to_thread.run_sync(self._hash_sync, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; never raises for bad input.

        ``None``, and a stored value that is not an argon2 hash at all, are checked against a
        dummy hash made with the current parameters, so they take about as long as a real
        mismatch and the timing does not tell accounts apart. Either way the answer is ``False``.
        """
        return await anyio.to_thread.run_sync(self._verify_sync, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than the current ones.

        A value that is not an argon2 hash answers ``True``: it should be replaced.
        """
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def _hash_sync(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(_encode(password))

    def _verify_sync(self, stored: str | None, password: str) -> bool:
        # argon2-cffi reads the hash as ASCII; anything else is not one of its hashes (and would
        # raise UnicodeEncodeError rather than InvalidHashError).
        if stored is None or not stored.isascii():
            self._spend_like_a_mismatch(password)
            return False
        encoded = _encode(password)
        try:
            with self._slots:
                return self._hasher.verify(stored, encoded)
        except InvalidHashError:
            self._spend_like_a_mismatch(password)
            return False
        except VerificationError:
            # A mismatch, or an argon2 string whose parameters libargon2 rejects.
            return False

    def _spend_like_a_mismatch(self, password: str) -> None:
        dummy = self._dummy_hash()
        try:
            with self._slots:
                self._hasher.verify(dummy, _encode(password))
        except VerificationError:
            pass  # the expected answer: nobody knows the dummy's random password

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = self._hash_sync(secrets.token_urlsafe(32))
        return self._dummy
