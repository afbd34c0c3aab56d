"""The codes of a verify answer (DESIGN.md §4), in check order.

Its own module so every check (``policy``, ``limits``, ``verification``) can name outcomes
without importing the others.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The code of a verify answer, in check order."""

    NOT_FOUND = "NOT_FOUND"
    DISABLED = "DISABLED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_PERMISSIONS = "INSUFFICIENT_PERMISSIONS"
    TOKENS_EXCEEDED = "TOKENS_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    CONCURRENCY_LIMITED = "CONCURRENCY_LIMITED"
    USAGE_EXCEEDED = "USAGE_EXCEEDED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    LIMITS_UNAVAILABLE = "LIMITS_UNAVAILABLE"
    """Credits, budget or concurrency could not be checked (the shared store is down); keyrack's
    addition to DESIGN.md §4, so an outage never reads as a customer out of credits."""
    VALID = "VALID"
