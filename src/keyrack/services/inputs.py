"""Input bounds enforced by the services themselves.

The library and the CLI thereby get the same checks as the HTTP API, whose schemas call the same
domain functions first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from keyrack.domain import validation
from keyrack.domain.models import (
    MAX_CONCURRENCY,
    MAX_LEASE_TTL_SECONDS,
    JsonObject,
    Limits,
)
from keyrack.errors import InvalidInput

T = TypeVar("T")

MAX_SLUGS = 1000
MAX_RATE_LIMITS = 32


def checked(check: Callable[[T], T], value: T) -> T:
    """Run a domain check; its ``ValueError`` becomes ``InvalidInput`` with the same message.

    Raises:
        InvalidInput: The value is out of bounds.
    """
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def name(value: str, *, field: str = "name") -> str:
    """A bounded display name or identifier."""
    return checked(lambda v: validation.check_name(v, field=field), value)


def description(value: str | None) -> str | None:
    """A bounded description (``None`` allowed)."""
    return None if value is None else checked(validation.check_description, value)


def meta(value: JsonObject) -> JsonObject:
    """Bounded, plain-JSON meta."""
    return checked(validation.check_meta, value)


def slugs(values: Iterable[str], *, field: str) -> tuple[str, ...]:
    """Permission or role names: each a bounded name, at most 1,000 of them."""
    result = tuple(name(v, field=field) for v in values)
    if len(result) > MAX_SLUGS:
        raise InvalidInput(f"{field} must hold at most {MAX_SLUGS} entries")
    return result


def limits(value: Limits, *, now_ms: int | None) -> Limits:
    """Bounded limits; with ``now_ms``, a balance being set counts as set (refilled) now.

    Stamping the balance with the time it is set means a daily or monthly refill first comes
    at the next scheduled instant, not at once (which would overwrite the balance just set).

    Raises:
        InvalidInput: Too many or repeated rate limit names, or a value out of bounds.
    """
    names = [limit.name for limit in value.rate_limits]
    if len(names) > MAX_RATE_LIMITS:
        raise InvalidInput(
            f"a key or identity has at most {MAX_RATE_LIMITS} rate limits", field="rate_limits"
        )
    if len(set(names)) != len(names):
        raise InvalidInput("rate limit names must be distinct", field="rate_limits")
    concurrency = value.max_concurrency
    if concurrency is not None and (
        type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidInput(
            f"max_concurrency must be an integer 1 … {MAX_CONCURRENCY} or null",
            field="max_concurrency",
        )
    ttl = value.lease_ttl_seconds
    if type(ttl) is not int or not 1 <= ttl <= MAX_LEASE_TTL_SECONDS:
        raise InvalidInput(
            f"lease_ttl_seconds must be an integer 1 … {MAX_LEASE_TTL_SECONDS}",
            field="lease_ttl_seconds",
        )
    if now_ms is not None and value.credits is not None:
        value = replace(value, credits=replace(value.credits, refilled_at_ms=now_ms))
    return value
