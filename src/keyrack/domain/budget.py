"""Budgets: a spending cap in integer micro-units of a currency, reset on UTC calendar periods.

A key may carry a ``budget`` (DESIGN.md §2, §11): ``limit`` micro-units (1 USD = 1,000,000) per
``period`` (``day``, ``month`` or ``never``). Verify charges the request's ``spend``; a charge
that would pass the limit is denied (``BUDGET_EXCEEDED``) and charges nothing. Once the spent
share reaches ``soft_threshold`` (a ratio, default 0.8) the response says
``soft_limit_reached``, so the platform can warn before it has to refuse. The same counter with a
calendar period is how a "per day" or "per month" quota that resets at midnight is expressed.

Everything is integer arithmetic whose intermediates stay below 2**53, so a Lua port (doubles)
decides identically:

- The soft threshold is held in **basis points** (8000 = 0.8); the soft limit in micro-units is
  ``ceil(limit * bp / 10000)``, computed as ``q * bp + ceil(r * bp / 10000)`` with
  ``q, r = divmod(limit, 10000)`` so that no product passes ``limit``.
- The charge is allowed when ``spend <= limit - spent``; a limit lowered below ``spent`` leaves
  ``remaining`` at 0, never negative.
- **Rollover** is lazy: a stored ``period_start_ms`` older than the start of the current UTC day
  (or month) means a new period, so ``spent`` reads as 0. A clock behind ``period_start_ms``
  never rolls over, so skew cannot reset a budget. A Redis script needs no calendar: the caller
  passes ``period_start_ms(period, now)`` and the script compares integers.

State for a store is two integers, ``spent`` and ``period_start_ms``; the rest is configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from fractions import Fraction
from typing import Final

from keyrack.errors import InvalidInput

__all__ = [
    "BASIS_POINTS",
    "DEFAULT_SOFT_THRESHOLD_BP",
    "MAX_AMOUNT",
    "Budget",
    "BudgetPeriod",
    "basis_points",
    "charge",
    "current",
    "period_start_ms",
]

MAX_AMOUNT: Final = 2**53 - 1
"""Largest limit, spend or total spent, in micro-units."""

BASIS_POINTS: Final = 10_000
"""Basis points in a ratio of 1."""

DEFAULT_SOFT_THRESHOLD_BP: Final = 8_000
"""The default soft threshold, 0.8 (DESIGN.md §11)."""

_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


class BudgetPeriod(StrEnum):
    """When a budget's spending goes back to zero: each UTC day, each UTC month, or never."""

    DAY = "day"
    MONTH = "month"
    NEVER = "never"


def _check_amount(value: object, field: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_AMOUNT:
        raise InvalidInput(f"{field} must be an integer 0 … {MAX_AMOUNT}", field=field)


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending cap, its soft threshold, and what the current period has spent.

    Attributes:
        limit: Micro-units that may be spent per period, 0 … 2**53 - 1.
        period: When ``spent`` resets.
        soft_threshold_bp: The share of ``limit`` that raises ``soft_limit_reached``, in basis
            points 0 … 10000 (8000 = 0.8).
        spent: Micro-units spent in the period starting at ``period_start_ms``.
        period_start_ms: Epoch milliseconds of the start of the period ``spent`` belongs to.
        soft_limit: Derived: the spend at which the soft threshold is reached,
            ``ceil(limit * bp / 10000)``, computed as ``q * bp + ceil(r * bp / 10000)`` with
            ``q, r = divmod(limit, 10000)`` so no product passes ``limit``.
    """

    limit: int
    period: BudgetPeriod = BudgetPeriod.NEVER
    soft_threshold_bp: int = DEFAULT_SOFT_THRESHOLD_BP
    spent: int = 0
    period_start_ms: int = 0
    soft_limit: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_amount(self.limit, "limit")
        _check_amount(self.spent, "spent")
        bp = self.soft_threshold_bp
        if type(bp) is not int or not 0 <= bp <= BASIS_POINTS:
            raise InvalidInput("soft threshold must be a ratio 0 … 1", field="soft_threshold")
        whole, rest = divmod(self.limit, BASIS_POINTS)
        soft_limit = whole * bp + (rest * bp + BASIS_POINTS - 1) // BASIS_POINTS
        object.__setattr__(self, "soft_limit", soft_limit)

    @property
    def remaining(self) -> int:
        """Micro-units left in this period; 0, never negative, once the limit is reached."""
        return max(self.limit - self.spent, 0)

    @property
    def soft_limit_reached(self) -> bool:
        """Whether ``spent`` has reached the soft threshold (always, for a zero limit)."""
        return self.spent >= self.soft_limit


# Each field's slot descriptor: setting through it skips the frozen ``__setattr__`` (see _moved).
_set_limit, _set_period, _set_bp, _set_spent, _set_start, _set_soft = (
    Budget.__dict__[name].__set__
    for name in ("limit", "period", "soft_threshold_bp", "spent", "period_start_ms", "soft_limit")
)


def _moved(budget: Budget, spent: int, period_start_ms: int) -> Budget:
    """Copy ``budget`` with new state, without ``__init__``.

    The policy was validated when ``budget`` was built and callers keep ``spent`` within
    ``0 … limit``, so the checks are skipped: a copy through the slot descriptors costs a third
    of a validated construction, on every verify that carries a budget.
    """
    moved = object.__new__(Budget)
    _set_limit(moved, budget.limit)
    _set_period(moved, budget.period)
    _set_bp(moved, budget.soft_threshold_bp)
    _set_spent(moved, spent)
    _set_start(moved, period_start_ms)
    _set_soft(moved, budget.soft_limit)
    return moved


def basis_points(ratio: float | Fraction) -> int:
    """Convert a ratio (``0.8``) to basis points (``8000``), rounding to the nearest.

    Args:
        ratio: A share of the limit, 0 … 1.

    Returns:
        The ratio in basis points.

    Raises:
        InvalidInput: The ratio is outside 0 … 1, or NaN.
    """
    if not 0 <= ratio <= 1:  # also refuses NaN, which compares false with everything
        raise InvalidInput("soft threshold must be a ratio 0 … 1", field="soft_threshold")
    return round(Fraction(ratio) * BASIS_POINTS)


def period_start_ms(period: BudgetPeriod, now: datetime) -> int | None:
    """Return the start of the UTC period containing ``now``.

    Args:
        period: The budget's period.
        now: The current time, timezone-aware (any zone; periods are UTC).

    Returns:
        Epoch milliseconds of the current day's or month's UTC midnight, or ``None`` for
        ``never``.

    Raises:
        InvalidInput: ``now`` is naive.
    """
    if period is BudgetPeriod.NEVER:
        return None
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware", field="now")
    today = (now if now.tzinfo is UTC else now.astimezone(UTC)).date()
    ordinal = today.toordinal()
    if period is BudgetPeriod.MONTH:
        ordinal -= today.day - 1
    return (ordinal - _EPOCH_ORDINAL) * _DAY_MS


def current(budget: Budget, now: datetime) -> Budget:
    """Return the budget as it stands at ``now``, rolled over when a new period began.

    Args:
        budget: The stored budget.
        now: The current time, timezone-aware.

    Returns:
        ``budget`` itself within its period, else the budget with nothing spent in the period
        starting at the current period's start.

    Raises:
        InvalidInput: ``now`` is naive.
    """
    start = period_start_ms(budget.period, now)
    if start is None or budget.period_start_ms >= start:
        return budget
    return _moved(budget, 0, start)


def charge(budget: Budget, *, now: datetime, spend: int = 0) -> tuple[bool, Budget, bool]:
    """Charge ``spend`` micro-units at ``now`` if the period's budget covers it.

    Args:
        budget: The stored budget.
        now: The current time, timezone-aware.
        spend: Micro-units to charge, 0 … 2**53 - 1; 0 is always allowed.

    Returns:
        ``(allowed, budget_after, soft_limit_reached)``. When denied nothing is charged:
        ``budget_after`` is the budget as it stands at ``now`` (``current``), equivalent to
        the stored one, and ``soft_limit_reached`` describes it.

    Raises:
        InvalidInput: ``spend`` is out of bounds or ``now`` is naive.
    """
    _check_amount(spend, "spend")
    view = current(budget, now)
    if spend == 0 or spend > view.limit - view.spent:
        return spend == 0, view, view.soft_limit_reached
    after = _moved(view, view.spent + spend, view.period_start_ms)
    return True, after, after.soft_limit_reached
