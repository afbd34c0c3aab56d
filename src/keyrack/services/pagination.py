"""Cursor pagination shared by every list use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from keyrack.domain.ids import looks_like_id
from keyrack.errors import InvalidInput

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 100


class HasId(Protocol):
    """Anything listed by id."""

    @property
    def id(self) -> str:
        """The object's id."""
        ...


T = TypeVar("T", bound=HasId)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is ``None`` on the last page."""

    items: Sequence[T]
    next_cursor: str | None


def check_page_args(limit: int, cursor: str | None, *, id_prefix: str) -> None:
    """Validate a page size and an opaque cursor (the last id of the previous page).

    Raises:
        InvalidInput: The limit is out of 1..100 or the cursor is not one we issued.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if cursor is not None and not looks_like_id(cursor, id_prefix):
        raise InvalidInput("cursor is not valid; pass next_cursor from a previous page")


async def paginate(
    fetch: Callable[[int, str | None], Awaitable[Sequence[T]]],
    *,
    limit: int,
    cursor: str | None,
    id_prefix: str,
) -> Page[T]:
    """Fetch one row more than asked to learn whether another page exists."""
    check_page_args(limit, cursor, id_prefix=id_prefix)
    rows = await fetch(limit + 1, cursor)
    if len(rows) > limit:
        return Page(items=rows[:limit], next_cursor=rows[limit - 1].id)
    return Page(items=rows, next_cursor=None)
