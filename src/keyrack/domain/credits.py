"""Credits: a balance that requests spend, refilled daily or monthly, computed lazily.

A key (or its identity) may carry ``credits``: ``remaining`` units (``None`` is unlimited) and a
``refill`` policy (DESIGN.md §2, §11). Every verify spends the request's ``cost``; a spend that
does not fit is denied (``USAGE_EXCEEDED``) and consumes nothing. A monthly refill is also how a
calendar *quota* ("10,000 calls a month") is expressed.

Choices:

- **A refill sets the balance to ``amount``; it does not add.** This is Unkey's rule and what a
  plan's "N calls a day" means: unused credits do not pile up, and a refill is idempotent, so a
  balance last touched months ago gets exactly one refill, never one per missed period.
- **Lazy, from timestamps**: no cron. ``refilled_at_ms`` records the scheduled refill instant the
  balance reflects; at ``now`` the balance is due a refill when the latest scheduled instant
  ``≤ now`` is later than ``refilled_at_ms``. New credits start with ``refilled_at_ms`` = their
  creation time, so the first refill is the first scheduled instant after it.
- **Schedule, in UTC**: ``daily`` refills at every UTC midnight; ``monthly`` at UTC midnight on
  ``day`` (1-31) of each month, clamped to the month's last day (``day=31`` refills on 30 April
  and on 28 or 29 February).
- **A clock behind ``refilled_at_ms`` never refills**, so skew cannot mint credits.

State for a store is two integers, ``remaining`` and ``refilled_at_ms``; the refill policy is
configuration. A Redis script needs no calendar: the caller passes ``refill_boundary_ms(refill,
now)`` and the script applies ``if refilled_at < boundary then remaining = amount, refilled_at =
boundary``, then the same integer comparison as ``spend``.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Final

from keyrack.errors import InvalidInput

__all__ = [
    "MAX_AMOUNT",
    "NO_REFILL",
    "Credits",
    "Refill",
    "RefillInterval",
    "refill_boundary_ms",
    "refill_due",
    "spend",
]

MAX_AMOUNT: Final = 2**53 - 1
"""Largest balance, refill amount or cost: exact in JSON numbers and Lua doubles."""

_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


class RefillInterval(StrEnum):
    """How often a balance is refilled."""

    NEVER = "never"
    DAILY = "daily"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class Refill:
    """A refill policy: set the balance to ``amount`` on a UTC calendar schedule.

    Attributes:
        interval: ``never``, ``daily`` (each UTC midnight) or ``monthly``.
        amount: The balance after a refill, 0 … 2**53 - 1 (ignored for ``never``).
        day: For ``monthly`` only, the day of the month 1-31, clamped to the month's last day;
            ``None`` for the other intervals.
    """

    interval: RefillInterval = RefillInterval.NEVER
    amount: int = 0
    day: int | None = None

    def __post_init__(self) -> None:
        if type(self.amount) is not int or not 0 <= self.amount <= MAX_AMOUNT:
            raise InvalidInput(f"refill amount must be an integer 0 … {MAX_AMOUNT}", field="amount")
        if self.interval is RefillInterval.MONTHLY:
            if type(self.day) is not int or not 1 <= self.day <= 31:
                raise InvalidInput("a monthly refill needs a day 1-31", field="day")
        elif self.day is not None:
            raise InvalidInput("only a monthly refill has a day", field="day")


NO_REFILL: Final = Refill()


@dataclass(frozen=True, slots=True)
class Credits:
    """A balance and its refill policy.

    Attributes:
        remaining: Units left, 0 … 2**53 - 1, or ``None`` for unlimited (which ignores refills).
        refill: When and to what the balance is refilled.
        refilled_at_ms: Epoch milliseconds of the scheduled refill (or of the creation or last
            set) that ``remaining`` reflects.
    """

    remaining: int | None
    refill: Refill = NO_REFILL
    refilled_at_ms: int = 0

    def __post_init__(self) -> None:
        remaining = self.remaining
        if remaining is not None and (
            type(remaining) is not int or not 0 <= remaining <= MAX_AMOUNT
        ):
            raise InvalidInput(
                f"credits must be an integer 0 … {MAX_AMOUNT} or null", field="remaining"
            )


# Each field's slot descriptor: setting through it skips the frozen ``__setattr__`` (see _moved).
_set_remaining, _set_refill, _set_refilled_at = (
    Credits.__dict__[name].__set__ for name in ("remaining", "refill", "refilled_at_ms")
)


def _moved(credits: Credits, remaining: int, refilled_at_ms: int) -> Credits:
    """Copy ``credits`` with a new balance, without ``__init__``.

    Callers keep ``remaining`` within ``0 … 2**53 - 1`` (a refill amount, or a balance minus a
    cost it covers), so the checks are skipped: this runs on every verify that carries credits.
    """
    moved = object.__new__(Credits)
    _set_remaining(moved, remaining)
    _set_refill(moved, credits.refill)
    _set_refilled_at(moved, refilled_at_ms)
    return moved


def _as_utc(now: datetime) -> datetime:
    """Return ``now`` in UTC; a naive datetime is refused rather than guessed."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware", field="now")
    return now if now.tzinfo is UTC else now.astimezone(UTC)


def _midnight_ms(day: date) -> int:
    """Epoch milliseconds of UTC midnight starting ``day``, in integers only."""
    return (day.toordinal() - _EPOCH_ORDINAL) * _DAY_MS


def _refill_date(day_of_month: int, today: date) -> date:
    """The latest monthly refill date on or before ``today``."""
    year, month = today.year, today.month
    this_month = min(day_of_month, monthrange(year, month)[1])
    if today.day >= this_month:
        return date(year, month, this_month)
    year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return date(year, month, min(day_of_month, monthrange(year, month)[1]))


def refill_boundary_ms(refill: Refill, now: datetime) -> int | None:
    """Return the latest scheduled refill instant at or before ``now``.

    Args:
        refill: The refill policy.
        now: The current time, timezone-aware (any zone; the schedule is UTC).

    Returns:
        Epoch milliseconds of that instant, or ``None`` for ``never``.

    Raises:
        InvalidInput: ``now`` is naive.
    """
    today = _as_utc(now).date()
    if refill.interval is RefillInterval.DAILY:
        return _midnight_ms(today)
    if refill.interval is RefillInterval.MONTHLY:
        return _midnight_ms(_refill_date(refill.day or 1, today))
    return None


def refill_due(credits: Credits, now: datetime) -> Credits:
    """Return the balance as it stands at ``now``, with any refill that came due applied.

    Args:
        credits: The stored credits.
        now: The current time, timezone-aware.

    Returns:
        ``credits`` itself when no refill is due, else credits set to the refill amount as of
        the refill instant.

    Raises:
        InvalidInput: ``now`` is naive.
    """
    refill = credits.refill
    if credits.remaining is None or refill.interval is RefillInterval.NEVER:
        return credits
    today = _as_utc(now).date()
    # Every refill instant is a UTC midnight at or before today's: none can be newer than this.
    if credits.refilled_at_ms >= _midnight_ms(today):
        return credits
    boundary = refill_boundary_ms(refill, now)
    if boundary is None or credits.refilled_at_ms >= boundary:
        return credits
    return _moved(credits, refill.amount, boundary)


def spend(credits: Credits, *, now: datetime, cost: int = 1) -> tuple[bool, Credits]:
    """Spend ``cost`` units at ``now`` if the balance, refilled as due, covers it.

    Args:
        credits: The stored credits.
        now: The current time, timezone-aware.
        cost: Units to spend, 0 … 2**53 - 1; 0 is a peek and is always allowed.

    Returns:
        ``(allowed, credits_after)``. When allowed, the balance after the spend. When denied,
        nothing is spent: the balance as it stands at ``now`` (``refill_due``), which is
        equivalent to the stored one, so persisting it is optional.

    Raises:
        InvalidInput: ``cost`` is out of bounds or ``now`` is naive.
    """
    if type(cost) is not int or not 0 <= cost <= MAX_AMOUNT:
        raise InvalidInput(f"cost must be an integer 0 … {MAX_AMOUNT}", field="cost")
    current = refill_due(credits, now)
    remaining = current.remaining
    if remaining is None or cost == 0:
        return True, current
    if cost > remaining:
        return False, current
    return True, _moved(current, remaining - cost, current.refilled_at_ms)
