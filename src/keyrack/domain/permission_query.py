"""Permission queries for verify: parse ``a AND (b OR c)`` once, evaluate it cheaply many times.

Pure: no I/O. DESIGN.md §2 ("Permission / role"), §4 (``INSUFFICIENT_PERMISSIONS``) and §11
(a malformed query is a 400 problem with code ``permissions.query_syntax`` and a ``position``).

Grammar (whitespace may appear anywhere between tokens)::

    query     := or_expr END
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := primary ("AND" primary)*
    primary   := name | "(" or_expr ")"
    name      := "*" | segment ("." segment)* [".*"]
    segment   := [a-z0-9_] [a-z0-9_:-]*

- ``AND`` binds tighter than ``OR``: ``a OR b AND c`` is ``a OR (b AND c)``.
- Keywords are upper-case only. Names are lower-case only, so the two never collide; the words
  ``and``/``or`` in any other spelling (``and``, ``Or``) are rejected with a hint instead of being
  read as permission names, which would silently change a query's meaning.
- Tokens are separated by ASCII whitespace (space, tab, CR, LF, FF, VT) or by parentheses:
  ``(a)AND(b)`` is valid, ``aAND b`` is not. Other white space (NBSP …) is a bad character.
- ``*`` is allowed only as a whole last segment (``documents.*``) or as the whole name (``*``).
- Bounds, checked while parsing so hostile input costs linear time and bounded recursion:
  at most ``MAX_QUERY_LENGTH`` characters, parentheses nested at most ``MAX_DEPTH`` deep, at most
  ``MAX_TERMS`` permission names.

The AST mirrors the text: ``a AND b AND c`` is one ``And`` of three items, a parenthesised group
is its own node, redundant parentheses vanish (``((a))`` is ``Perm("a")``), and an ``And``/``Or``
from ``parse`` always has at least two items. ``render`` writes the canonical text back, and
``parse(render(node)) == node``.

Wildcard semantics (a required name R is satisfied by a granted name G when):

- G == R; or
- G is ``*`` (holds everything); or
- G is ``P.*`` and R starts with ``P.``: a granted ``documents.*`` satisfies ``documents.read``,
  ``documents.read.own``, ``documents.read.*`` and, by the first rule, ``documents.*``.

So a *required* wildcard asks "does the key hold that wildcard (or a broader one)?": a query
``documents.*`` is satisfied by a granted ``documents.*`` or ``*``, never by holding
``documents.read``. A granted ``documents.*`` does not satisfy a required ``documents`` (the
wildcard covers the children, not a permission literally named like the prefix). Checking one
name looks up each wildcard ancestor of R in the granted set: O(segments of R), independent of
how many permissions the key holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple, TypeAlias

from keyrack.errors import PermissionQuerySyntax

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "WILDCARD",
    "And",
    "Keyword",
    "Node",
    "Or",
    "Perm",
    "PermissionQuerySyntax",
    "effective_permissions",
    "evaluate",
    "is_permission_name",
    "parse",
    "render",
]

MAX_QUERY_LENGTH: Final = 1000
MAX_DEPTH: Final = 32
MAX_TERMS: Final = 100
WILDCARD: Final = "*"

# One token (or the end) after optional whitespace: group 1 a parenthesis, group 2 a word.
# Only ASCII whitespace separates tokens; any other character belongs to a word.
# The classes are disjoint, so matching is linear with no backtracking.
_TOKEN_RE: Final = re.compile(r"[ \t\n\r\f\v]*(?:([()])|([^ \t\n\r\f\v()]+))?")
_SEGMENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_SEGMENT_CHAR: Final = _SEGMENT_START | frozenset(":-")
_SHOWN_WORD_LENGTH: Final = 40


class Keyword(StrEnum):
    """The query's operators, spelled upper-case only."""

    AND = "AND"
    OR = "OR"


@dataclass(frozen=True, slots=True)
class Perm:
    """A required permission name (``chat.write``, ``documents.*``, ``*``).

    ``covering`` holds every granted name that satisfies it: the name itself, each wildcard
    ancestor (``documents.*`` for ``documents.read``) and ``*``. It is derived once here so a
    check is a handful of set look-ups.
    """

    name: str
    covering: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments = self.name.split(".")
        wildcards = [".".join(segments[:k]) + ".*" for k in range(len(segments) - 1, 0, -1)]
        covering = tuple(dict.fromkeys([self.name, *wildcards, WILDCARD]))
        object.__setattr__(self, "covering", covering)

    def is_satisfied_by(self, granted: frozenset[str]) -> bool:
        """Whether ``granted`` holds this name or a wildcard covering it."""
        return not granted.isdisjoint(self.covering)


@dataclass(frozen=True, slots=True)
class And:
    """Every item must be satisfied."""

    items: tuple[Node, ...]

    def is_satisfied_by(self, granted: frozenset[str]) -> bool:
        """Whether ``granted`` satisfies every item."""
        # A plain loop: all() over a generator costs a third more on this hot path.
        for item in self.items:  # noqa: SIM110
            if not item.is_satisfied_by(granted):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Or:
    """At least one item must be satisfied."""

    items: tuple[Node, ...]

    def is_satisfied_by(self, granted: frozenset[str]) -> bool:
        """Whether ``granted`` satisfies at least one item."""
        # A plain loop: any() over a generator costs a third more on this hot path.
        for item in self.items:  # noqa: SIM110
            if item.is_satisfied_by(granted):
                return True
        return False


Node: TypeAlias = Perm | And | Or
"""A parsed permission query."""


def evaluate(query: Node, granted: frozenset[str]) -> bool:
    """Decide whether a key holding ``granted`` satisfies ``query``.

    Args:
        query: A query from ``parse`` (verify caches it per query string).
        granted: The key's effective permissions (see ``effective_permissions``).

    Returns:
        Whether the key has the permissions the query asks for, wildcards applied as the
        module docstring describes.
    """
    return query.is_satisfied_by(granted)


def effective_permissions(
    direct: Iterable[str], roles: Mapping[str, Iterable[str]], key_roles: Iterable[str]
) -> frozenset[str]:
    """Union a key's direct permissions with those of its roles.

    A role the key names but ``roles`` lacks (deleted since) grants nothing: the answer fails
    closed.

    Args:
        direct: The permissions granted to the key itself.
        roles: The tenant's roles, by name, each with its permissions.
        key_roles: The names of the roles the key holds.

    Returns:
        Every permission name the key holds.

    Raises:
        TypeError: A bare string was passed where a collection of names belongs (it would
            otherwise grant each of its characters).
    """
    effective = set(_names(direct))
    for role in _names(key_roles):
        effective.update(_names(roles.get(role, ())))
    return frozenset(effective)


def _names(names: Iterable[str]) -> Iterable[str]:
    if isinstance(names, str):
        raise TypeError("expected a collection of permission names, not a single string")
    return names


def is_permission_name(text: str) -> bool:
    """Whether ``text`` is a valid permission name (the ``name`` rule of the grammar).

    The words ``and`` and ``or`` in any spelling are not names (they read as misspelt keywords).
    """
    return _name_error(text, 0) is None and text.upper() not in _KEYWORDS


def render(query: Node) -> str:
    """Write ``query`` as canonical text, parenthesised only where the structure needs it.

    ``parse(render(node)) == node`` for every node ``parse`` can return.
    """
    if isinstance(query, Perm):
        return query.name
    if isinstance(query, And):
        return " AND ".join(
            render(item) if isinstance(item, Perm) else f"({render(item)})" for item in query.items
        )
    return " OR ".join(
        f"({render(item)})" if isinstance(item, Or) else render(item) for item in query.items
    )


def parse(text: str) -> Node:
    """Parse a permission query.

    Args:
        text: The query, as sent in the verify request's ``permissions`` field.

    Returns:
        The query's AST.

    Raises:
        PermissionQuerySyntax: The query is malformed or exceeds a bound; ``position`` is the
            0-based character offset of the first problem, reading left to right.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise PermissionQuerySyntax(
            f"the query is longer than {MAX_QUERY_LENGTH} characters", position=MAX_QUERY_LENGTH
        )
    return _Parser(text).parse()


class _Kind(StrEnum):
    NAME = "name"
    AND = "AND"
    OR = "OR"
    OPEN = "("
    CLOSE = ")"
    END = "end"


_KEYWORDS: Final = frozenset(Keyword)
_SYMBOLS: Final = {"AND": _Kind.AND, "OR": _Kind.OR, "(": _Kind.OPEN, ")": _Kind.CLOSE}


class _Token(NamedTuple):
    # A named tuple, not a frozen dataclass: one is built per token and costs a third as much.
    kind: _Kind
    text: str
    position: int

    def describe(self) -> str:
        if self.kind is _Kind.END:
            return "the end of the query"
        if len(self.text) > _SHOWN_WORD_LENGTH:
            return f"'{self.text[:_SHOWN_WORD_LENGTH]}…'"
        return f"'{self.text}'"


def _name_error(word: str, start: int) -> PermissionQuerySyntax | None:
    """Scan ``word`` (which begins at ``start`` in the query) against the ``name`` rule."""
    at_segment_start = True
    for offset, char in enumerate(word):
        position = start + offset
        if at_segment_start and char == WILDCARD:
            if offset + 1 < len(word):
                return PermissionQuerySyntax(
                    f"'*' must be the last segment of a permission name at position {position + 1}",
                    position=position + 1,
                )
            return None
        if char == "*":
            return PermissionQuerySyntax(
                f"'*' must be a whole segment (as in 'documents.*') at position {position}",
                position=position,
            )
        if char == ".":
            if at_segment_start:
                return PermissionQuerySyntax(
                    f"empty segment in a permission name at position {position}",
                    position=position,
                )
            at_segment_start = True
        elif at_segment_start and char in _SEGMENT_START:
            at_segment_start = False
        elif not at_segment_start and char in _SEGMENT_CHAR:
            pass
        elif char in _SEGMENT_CHAR:
            return PermissionQuerySyntax(
                f"a name segment must start with a-z, 0-9 or '_', not {char!r}, "
                f"at position {position}",
                position=position,
            )
        else:
            return PermissionQuerySyntax(
                f"unexpected character {char!r} at position {position} (names use a-z, 0-9, "
                "'_', ':', '-', '.' and a final '*'; operators are AND and OR)",
                position=position,
            )
    if at_segment_start:
        end = start + len(word)
        return PermissionQuerySyntax(
            f"empty segment in a permission name at position {end}", position=end
        )
    return None


class _Parser:
    """Recursive descent over lazily read tokens, so errors surface in reading order."""

    def __init__(self, text: str) -> None:
        self._matches = _TOKEN_RE.finditer(text)
        self._depth = 0
        self._terms = 0
        self._token = self._read()

    def parse(self) -> Node:
        node = self._or_expr()
        token = self._token
        if token.kind is _Kind.CLOSE:
            raise PermissionQuerySyntax(
                f"unmatched ')' at position {token.position}", position=token.position
            )
        if token.kind is not _Kind.END:
            raise PermissionQuerySyntax(
                f"expected AND, OR or the end of the query at position {token.position}, "
                f"found {token.describe()}",
                position=token.position,
            )
        return node

    def _read(self) -> _Token:
        # Every character is whitespace, a parenthesis or part of a word, so a match is empty
        # only at the end of the text; the parser stops there and never asks for more.
        match = next(self._matches)
        symbol, word = match.group(1, 2)
        if symbol is not None:
            return _Token(_SYMBOLS[symbol], symbol, match.start(1))
        if word is None:
            return _Token(_Kind.END, "", match.end())
        start = match.start(2)
        kind = _SYMBOLS.get(word)
        if kind is not None:
            return _Token(kind, word, start)
        if word.upper() in _KEYWORDS:
            raise PermissionQuerySyntax(
                f"operators are upper-case: write {word.upper()!r} instead of {word!r} "
                f"at position {start}",
                position=start,
            )
        error = _name_error(word, start)
        if error is not None:
            raise error
        return _Token(_Kind.NAME, word, start)

    def _advance(self) -> None:
        self._token = self._read()

    def _or_expr(self) -> Node:
        items = [self._and_expr()]
        while self._token.kind is _Kind.OR:
            self._advance()
            items.append(self._and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and_expr(self) -> Node:
        items = [self._primary()]
        while self._token.kind is _Kind.AND:
            self._advance()
            items.append(self._primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _primary(self) -> Node:
        token = self._token
        if token.kind is _Kind.NAME:
            self._terms += 1
            if self._terms > MAX_TERMS:
                at = token.position
                raise PermissionQuerySyntax(
                    f"more than {MAX_TERMS} permissions in one query at position {at}", position=at
                )
            self._advance()
            return Perm(token.text)
        if token.kind is _Kind.OPEN:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise PermissionQuerySyntax(
                    f"parentheses nested deeper than {MAX_DEPTH} at position {token.position}",
                    position=token.position,
                )
            self._advance()
            node = self._or_expr()
            closing = self._token
            if closing.kind is not _Kind.CLOSE:
                at, found = closing.position, closing.describe()
                raise PermissionQuerySyntax(
                    f"expected AND, OR or ')' at position {at} (to close the '(' at position "
                    f"{token.position}), found {found}",
                    position=at,
                )
            self._depth -= 1
            self._advance()
            return node
        at, found = token.position, token.describe()
        raise PermissionQuerySyntax(
            f"expected a permission or '(' at position {at}, found {found}", position=at
        )
