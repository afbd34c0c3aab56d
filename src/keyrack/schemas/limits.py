"""Wire shapes of limits shared by keys and identities (DESIGN.md §11), and their domain forms.

Integers are strict (``true`` is not ``1``), bounded to what JSON numbers and the Redis script
hold exactly, and ratios refuse NaN. ``to_domain`` builds the validated domain value; the
services validate again (the library and the CLI call them without these models).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from keyrack.domain import budget as budgets
from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits, Refill, RefillInterval
from keyrack.domain.models import DEFAULT_LEASE_TTL_SECONDS, MAX_LEASE_TTL_SECONDS
from keyrack.domain.ratelimit import MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS, RateLimit
from keyrack.schemas.common import RequestModel, ShortText

MAX_UNITS: Final = 2**53 - 1
MAX_RATE_LIMITS: Final = 32

Units = Annotated[StrictInt, Field(ge=0, le=MAX_UNITS)]


class RateLimitSpec(RequestModel):
    """One named rate limit: at most ``limit`` cost units in any ``window_seconds``."""

    name: ShortText
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)]
    window_seconds: Annotated[StrictInt, Field(ge=MIN_WINDOW_MS // 1000, le=MAX_WINDOW_MS // 1000)]

    def to_domain(self) -> RateLimit:
        """The domain limit."""
        return RateLimit(self.name, self.limit, self.window_seconds * 1000)

    @classmethod
    def of(cls, limit: RateLimit) -> RateLimitSpec:
        """Render a domain limit."""
        return cls(name=limit.name, limit=limit.limit, window_seconds=limit.window_ms // 1000)


RateLimits = Annotated[list[RateLimitSpec], Field(max_length=MAX_RATE_LIMITS)]


class RefillSpec(RequestModel):
    """Set the balance to ``amount`` each UTC day, or each month on ``day`` (1-31, clamped)."""

    interval: RefillInterval = RefillInterval.NEVER
    amount: Units = 0
    day: Annotated[StrictInt, Field(ge=1, le=31)] | None = None

    @classmethod
    def of(cls, refill: Refill) -> RefillSpec:
        """Render a domain refill policy."""
        return cls(interval=refill.interval, amount=refill.amount, day=refill.day)


class CreditsSpec(RequestModel):
    """A balance spent by each request's ``cost``; ``remaining: null`` is unlimited."""

    remaining: Units | None
    refill: RefillSpec = Field(default_factory=RefillSpec)

    def to_domain(self, *, now_ms: int) -> Credits:
        """The domain credits, as set at ``now_ms``."""
        refill = Refill(self.refill.interval, self.refill.amount, self.refill.day)
        return Credits(self.remaining, refill, now_ms)

    @classmethod
    def of(cls, credits: Credits) -> CreditsSpec:
        """Render domain credits (the balance as last written to the database)."""
        return cls(remaining=credits.remaining, refill=RefillSpec.of(credits.refill))


class BudgetSpec(RequestModel):
    """A spending cap in integer micro-units of a currency per UTC ``period``."""

    limit: Units
    period: Literal["day", "month", "never"] = "never"
    soft_threshold: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1, allow_inf_nan=False)] = 0.8

    def to_domain(self) -> Budget:
        """The domain budget (nothing spent)."""
        return Budget(
            self.limit, BudgetPeriod(self.period), budgets.basis_points(self.soft_threshold)
        )

    @classmethod
    def of(cls, budget: Budget) -> BudgetSpec:
        """Render a domain budget's configuration."""
        return cls(
            limit=budget.limit,
            period=budget.period.value,
            soft_threshold=budget.soft_threshold_bp / budgets.BASIS_POINTS,
        )


LeaseTtl = Annotated[StrictInt, Field(ge=1, le=MAX_LEASE_TTL_SECONDS)]
DEFAULT_LEASE_TTL: Final = DEFAULT_LEASE_TTL_SECONDS


class CreditsOperation(RequestModel):
    """Change a balance: ``set`` it, or ``increment`` / ``decrement`` it atomically."""

    op: Literal["set", "increment", "decrement"]
    amount: Units | None
    """The amount; ``null`` only with ``set`` (unlimited)."""


class CreditsRead(BaseModel):
    """A balance as it stands now, refills applied."""

    remaining: int | None
    refill: RefillSpec

    @classmethod
    def of(cls, remaining: int | None, refill: Refill) -> CreditsRead:
        """Render a live balance and its refill policy."""
        return cls(remaining=remaining, refill=RefillSpec.of(refill))


class RateLimitCheck(RequestModel):
    """``POST /v1/ratelimit``: charge ``cost`` to the limit of ``identifier`` in ``namespace``."""

    namespace: ShortText
    identifier: ShortText
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)]
    window_seconds: Annotated[StrictInt, Field(ge=MIN_WINDOW_MS // 1000, le=MAX_WINDOW_MS // 1000)]
    cost: Units = 1
    tenant_id: Annotated[StrictStr, Field(max_length=64)] | None = None
    """Whose namespace (platform callers); a tenant-scoped caller's own tenant by default."""


class RateLimitChecked(BaseModel):
    """The decision: ``success`` false means limited (nothing was consumed)."""

    success: bool
    limit: int
    remaining: int
    reset_at: datetime


class LeaseReleased(BaseModel):
    """Whether the lease was still held (``false`` for a repeat or an expired lease)."""

    released: bool
