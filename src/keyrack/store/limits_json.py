"""The ``limits`` JSON column and the counter snapshot columns <-> domain ``Limits``.

Keys and identities store their limits configuration as one JSON object (``NULL`` when there is
none) next to plain columns holding the latest counter snapshots, which the write-behind path
updates without touching the JSON::

    {
      "rate_limits": [{"name": "requests", "limit": 100, "window_seconds": 60}],
      "credits": {"refill": {"interval": "monthly", "amount": 1000, "day": 1}},
      "budget": {"limit": 5000000, "period": "month", "soft_threshold_bp": 8000},
      "max_concurrency": 4,
      "lease_ttl_seconds": 60
    }

Every member is optional and an absent one means the default (no rate limits, no credits, no
budget, no concurrency limit, the default lease lifetime). ``credits`` present means the owner
has a balance: ``remaining`` lives in ``credits_remaining`` (``NULL`` = unlimited) with
``credits_refilled_at_ms`` and ``credits_version``; the budget's spend lives in ``budget_spent``
and ``budget_period_start_ms``. Only members that differ from the default are written, so equal
configurations encode equally. A window that is not a whole number of seconds (possible through
the library, never through the API) is written as ``window_ms`` instead of ``window_seconds``.
Unknown members are ignored on read, so a newer writer does not break an older reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyrack.domain.budget import DEFAULT_SOFT_THRESHOLD_BP, Budget, BudgetPeriod
from keyrack.domain.credits import NO_REFILL, Credits, Refill, RefillInterval
from keyrack.domain.models import DEFAULT_LEASE_TTL_SECONDS, Limits
from keyrack.domain.ratelimit import RateLimit

__all__ = ["budget_columns", "credits_columns", "limits_from_row", "limits_to_json"]

_MS_PER_SECOND = 1000


def _rate_limit_json(limit: RateLimit) -> dict[str, Any]:
    seconds, rest = divmod(limit.window_ms, _MS_PER_SECOND)
    window: dict[str, int] = {"window_ms": limit.window_ms} if rest else {"window_seconds": seconds}
    return {"name": limit.name, "limit": limit.limit, **window}


def _refill_json(refill: Refill) -> dict[str, Any]:
    return {"interval": refill.interval.value, "amount": refill.amount, "day": refill.day}


def limits_to_json(limits: Limits) -> dict[str, Any] | None:
    """Encode the configuration part of ``limits`` for the ``limits`` column.

    Counter snapshots (credits balance, budget spend) are not part of it: see
    ``credits_columns`` and ``budget_columns``.

    Args:
        limits: The limits of a key or an identity.

    Returns:
        The JSON object, or ``None`` when every member has its default.
    """
    data: dict[str, Any] = {}
    if limits.rate_limits:
        data["rate_limits"] = [_rate_limit_json(limit) for limit in limits.rate_limits]
    if limits.credits is not None:
        data["credits"] = {"refill": _refill_json(limits.credits.refill)}
    if limits.budget is not None:
        budget = limits.budget
        data["budget"] = {
            "limit": budget.limit,
            "period": budget.period.value,
            "soft_threshold_bp": budget.soft_threshold_bp,
        }
    if limits.max_concurrency is not None:
        data["max_concurrency"] = limits.max_concurrency
    if limits.lease_ttl_seconds != DEFAULT_LEASE_TTL_SECONDS:
        data["lease_ttl_seconds"] = limits.lease_ttl_seconds
    return data or None


def _rate_limit(data: Mapping[str, Any]) -> RateLimit:
    window_ms = data.get("window_ms")
    if window_ms is None:
        window_ms = data["window_seconds"] * _MS_PER_SECOND
    return RateLimit(data["name"], data["limit"], window_ms)


def _refill(data: Mapping[str, Any] | None) -> Refill:
    if data is None:
        return NO_REFILL
    return Refill(
        RefillInterval(data.get("interval", RefillInterval.NEVER.value)),
        data.get("amount", 0),
        data.get("day"),
    )


def limits_from_row(  # noqa: PLR0917  # one positional per column, in the table's order
    data: Mapping[str, Any] | None,
    remaining: int | None,
    refilled_at_ms: int | None,
    version: int,
    budget_spent: int | None = None,
    budget_period_start_ms: int | None = None,
) -> Limits:
    """Decode the ``limits`` column and the snapshot columns of one row.

    Args:
        data: The ``limits`` JSON, or ``None``.
        remaining: ``credits_remaining`` (``None``: unlimited, or no credits).
        refilled_at_ms: ``credits_refilled_at_ms`` (``None`` reads as 0).
        version: ``credits_version``.
        budget_spent: ``budget_spent`` (keys only; ``None`` reads as 0).
        budget_period_start_ms: ``budget_period_start_ms`` (keys only; ``None`` reads as 0).

    Returns:
        The domain limits; credits and budget carry their snapshots.

    Raises:
        InvalidInput: The stored JSON holds a value out of the domain's bounds.
        KeyError: A rate limit or budget lacks a required member.
    """
    data = data or {}
    credits: Credits | None = None
    if (credits_data := data.get("credits")) is not None:
        credits = Credits(remaining, _refill(credits_data.get("refill")), refilled_at_ms or 0)
    budget: Budget | None = None
    if (budget_data := data.get("budget")) is not None:
        budget = Budget(
            budget_data["limit"],
            BudgetPeriod(budget_data.get("period", BudgetPeriod.NEVER.value)),
            budget_data.get("soft_threshold_bp", DEFAULT_SOFT_THRESHOLD_BP),
            budget_spent or 0,
            budget_period_start_ms or 0,
        )
    return Limits(
        rate_limits=tuple(_rate_limit(item) for item in data.get("rate_limits") or ()),
        credits=credits,
        credits_version=version,
        budget=budget,
        max_concurrency=data.get("max_concurrency"),
        lease_ttl_seconds=data.get("lease_ttl_seconds", DEFAULT_LEASE_TTL_SECONDS),
    )


def credits_columns(limits: Limits) -> dict[str, int | None]:
    """The credits snapshot columns of ``limits`` (all ``NULL`` but the version without credits).

    Returns:
        ``credits_remaining``, ``credits_refilled_at_ms`` and ``credits_version``.
    """
    credits = limits.credits
    return {
        "credits_remaining": None if credits is None else credits.remaining,
        "credits_refilled_at_ms": None if credits is None else credits.refilled_at_ms,
        "credits_version": limits.credits_version,
    }


def budget_columns(limits: Limits) -> dict[str, int | None]:
    """The budget snapshot columns of ``limits`` (keys only; ``NULL`` without a budget).

    Returns:
        ``budget_spent`` and ``budget_period_start_ms``.
    """
    budget = limits.budget
    return {
        "budget_spent": None if budget is None else budget.spent,
        "budget_period_start_ms": None if budget is None else budget.period_start_ms,
    }
