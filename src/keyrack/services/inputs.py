"""Input bounds enforced by the services themselves.

The library and the CLI thereby get the same checks as the HTTP API, whose schemas call the same
domain functions first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from keyrack.domain import validation
from keyrack.domain.models import JsonObject
from keyrack.errors import InvalidInput

T = TypeVar("T")

MAX_SLUGS = 1000


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
