"""Parameter types: the API's input bounds (``keyrack.domain.validation``) as click usage errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Final, NoReturn

import click

from keyrack.domain import validation
from keyrack.domain.models import MAX_NAME_LENGTH


class _Checked(click.ParamType[str]):
    """A string checked by one of the domain's validators."""

    def __init__(self, name: str, check: Callable[[str], str]) -> None:
        self.name = name
        self._check = check

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        """Return the checked string, or fail with the validator's message."""
        try:
            return self._check(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _short_text(value: str) -> str:
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise ValueError(f"must be 1 to {MAX_NAME_LENGTH} characters")
    return value


NAME: Final = _Checked("name", validation.check_name)
DESCRIPTION: Final = _Checked("text", validation.check_description)
SLUG: Final = _Checked("slug", validation.check_slug)
SHORT_TEXT: Final = _Checked("text", _short_text)


def _reject_constant(constant: str) -> NoReturn:
    # JSON has no NaN or Infinity; the API's parser refuses them, so the CLI does too.
    raise ValueError(f"{constant} is not valid JSON")


class JsonObject(click.ParamType[dict[str, object]]):
    """A JSON object within the meta bounds (16 KiB, depth 8)."""

    name = "json"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, object]:
        """Parse and bound-check the object."""
        try:
            parsed = json.loads(str(value), parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc.msg} (position {exc.pos})", param, ctx)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if not isinstance(parsed, dict):
            self.fail('must be a JSON object, e.g. \'{"plan": "pro"}\'', param, ctx)
        try:
            return validation.check_meta(parsed)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class AwareDateTime(click.ParamType[datetime]):
    """An ISO 8601 timestamp with a time zone (``2030-01-01T00:00:00Z``)."""

    name = "timestamp"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Parse the timestamp; a naive one is refused rather than guessed."""
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 timestamp", param, ctx)
        if moment.tzinfo is None:
            self.fail("must include a time zone, e.g. 2030-01-01T00:00:00Z", param, ctx)
        return moment


JSON_OBJECT: Final = JsonObject()
AWARE_DATETIME: Final = AwareDateTime()
