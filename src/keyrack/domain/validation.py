"""Input bounds shared by every surface (DESIGN.md §11 "Input bounds").

The wire schemas call these so the HTTP API, the CLI and the library reject the same things.
"""

from __future__ import annotations

import json
import re
from typing import Final

from keyrack.domain.models import (
    MAX_DESCRIPTION_LENGTH,
    MAX_META_BYTES,
    MAX_META_DEPTH,
    MAX_NAME_LENGTH,
)

MAX_SAFE_INTEGER: Final = 2**53 - 1
_SLUG_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` stripped; reject empty, over-long or control-character names.

    Raises:
        ValueError: With a message naming ``field``.
    """
    stripped = name.strip()
    if not stripped:
        raise ValueError(f"{field} must not be empty")
    if len(stripped) > MAX_NAME_LENGTH:
        raise ValueError(f"{field} must be at most {MAX_NAME_LENGTH} characters")
    if _CONTROL_RE.search(stripped):
        raise ValueError(f"{field} must not contain control characters")
    return stripped


def check_description(text: str) -> str:
    """Reject descriptions over 1,024 characters.

    Raises:
        ValueError: The description is too long.
    """
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"description must be at most {MAX_DESCRIPTION_LENGTH} characters")
    return text


def check_slug(slug: str) -> str:
    """Accept lower-case DNS-label slugs (``acme-corp``).

    Raises:
        ValueError: The slug has another shape.
    """
    if _SLUG_RE.fullmatch(slug) is None:
        raise ValueError(
            "slug must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    return slug


def slugify(name: str) -> str:
    """Derive a slug from a name (``"Acme Corp!"`` → ``"acme-corp"``); may be empty."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63].strip("-")


def _too_deep(value: object, *, allowed: int) -> bool:
    # Stops as soon as the limit is passed, so hostile nesting cannot exhaust the stack.
    if isinstance(value, dict | list):
        if allowed == 0:
            return True
        children = value.values() if isinstance(value, dict) else value
        return any(_too_deep(child, allowed=allowed - 1) for child in children)
    return False


def check_meta(meta: dict[str, object]) -> dict[str, object]:
    """Reject meta whose UTF-8 JSON encoding exceeds 16 KiB or whose depth exceeds 8.

    Depth counts the top-level object as 1. NaN and Infinity are refused: they are not JSON,
    and PostgreSQL would reject them at write time.

    Raises:
        ValueError: The meta is too large, too deep, or not plain JSON.
    """
    if _too_deep(meta, allowed=MAX_META_DEPTH):
        raise ValueError(f"meta must be nested at most {MAX_META_DEPTH} levels deep")
    try:
        encoded = json.dumps(
            meta, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except ValueError:
        raise ValueError("meta must not contain NaN or Infinity") from None
    except TypeError:
        raise ValueError("meta must hold only JSON values") from None
    if len(encoded) > MAX_META_BYTES:
        raise ValueError(f"meta must be at most {MAX_META_BYTES} bytes as UTF-8 JSON")
    return meta
