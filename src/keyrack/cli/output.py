"""Command output: pure JSON for ``--json``, aligned ``key: value`` lines and tables otherwise.

Everything here writes to stdout (data). Notes and warnings for people go to stderr through
``note``, so ``keyrack … --json | jq`` always sees JSON and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Final

import click
import orjson

# The HTTP API writes timestamps with a ``Z`` suffix (pydantic and the verify route's orjson).
_JSON_OPTIONS: Final = orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write the result as JSON (the HTTP API's shape) to stdout, and nothing else.",
)


def emit_json(data: object) -> None:
    """Write ``data`` to stdout as indented JSON."""
    click.echo(orjson.dumps(data, option=_JSON_OPTIONS).decode())


def note(message: str) -> None:
    """Tell the operator something on stderr (never data, never a secret)."""
    click.echo(message, err=True)


def text(value: object) -> str:
    """Render one value for people: ``-`` for nothing, lists joined, times to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value) if value else "-"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def show_fields(fields: Mapping[str, object]) -> None:
    """Write ``name: value`` lines with the values aligned."""
    width = max((len(name) for name in fields), default=0) + 1
    for name, value in fields.items():
        click.echo(f"{name + ':':<{width}} {text(value)}")


def show_table(columns: Sequence[str], rows: Sequence[Mapping[str, object]], *, empty: str) -> None:
    """Write ``rows`` as an aligned table of ``columns`` (``empty`` when there are none)."""
    if not rows:
        click.echo(empty)
        return
    cells = [[text(row.get(column)) for column in columns] for row in rows]
    header = [column.upper() for column in columns]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    for line in [header, *cells]:
        cells_text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo(cells_text.rstrip())


def show_next_cursor(next_cursor: str | None) -> None:
    """Tell how to fetch the next page, when there is one."""
    if next_cursor is not None:
        click.echo(f"more: pass --cursor {next_cursor}")
