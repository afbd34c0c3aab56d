"""Verify outcomes and the ordered checks that produce them (DESIGN.md §4).

Expected answers are values: a revoked key is ``Outcome.REVOKED``, not an exception. The checks
run in the contract's order and the first failure wins; later issues add policy and limit
steps after ``check_state`` without reordering it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from keyrack.domain.models import KeyRecord, KeyStatus
from keyrack.domain.outcome import Outcome

if TYPE_CHECKING:
    from keyrack.domain.limits import LimitAnswer

__all__ = ["NOT_FOUND", "NO_FACTS", "Outcome", "VerifyFacts", "VerifyResult", "check_state"]


class VerifyFacts(NamedTuple):
    """What the caller tells about the request being verified (DESIGN.md §4, §11).

    Attributes:
        permissions: A permission query (``a AND (b OR c)``), or ``None``.
        endpoint: ``"METHOD /path"``.
        ip: The client's address.
        origin: The ``Origin`` the request came from.
        tls: Whether the request came over TLS.
        tokens: Tokens the request asks for (``max_tokens_per_request``).
        cost: Units charged to credits and to every rate limit (default 1).
        ratelimits: ``(name, cost)`` overrides of the cost for named rate limits.
        spend: Micro-units charged to the budget (default 0).
    """

    permissions: str | None = None
    endpoint: str | None = None
    ip: str | None = None
    origin: str | None = None
    tls: bool | None = None
    tokens: int | None = None
    cost: int = 1
    ratelimits: tuple[tuple[str, int], ...] = ()
    spend: int = 0


NO_FACTS = VerifyFacts()


class VerifyResult(NamedTuple):
    """A verify answer: the outcome and, when the key was found, its record.

    A named tuple rather than a frozen dataclass: it is built on every verify, and a tuple
    costs a fifth as much to construct while staying just as immutable.
    """

    outcome: Outcome
    record: KeyRecord | None = None
    reason: str | None = None
    """Why a ``FORBIDDEN`` or ``TOKENS_EXCEEDED`` answer was given (``ip_not_allowed`` …)."""
    limits: LimitAnswer | None = None
    """Rate limits, credits, budget and lease after this request, for keys that have any."""

    @property
    def valid(self) -> bool:
        """Whether the key may be used for this request."""
        return self.outcome is Outcome.VALID


NOT_FOUND = VerifyResult(Outcome.NOT_FOUND)


def check_state(record: KeyRecord, *, now: float) -> Outcome:
    """Check status, then expiry (key expiry or the end of a rotated secret's grace).

    Args:
        record: The cached record of the presented secret.
        now: Epoch seconds from the injected clock.

    Returns:
        The first failing outcome, or ``Outcome.VALID``.
    """
    status = record.status
    if status is not KeyStatus.ACTIVE:
        return Outcome.DISABLED if status is KeyStatus.DISABLED else Outcome.REVOKED
    if record.valid_until is not None and now >= record.valid_until:
        return Outcome.EXPIRED
    return Outcome.VALID
