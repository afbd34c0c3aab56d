"""A key's request policy: IP allowlist, origins, endpoints, TLS and tokens per request.

Pure: no I/O. DESIGN.md §2 (the policy fields), §4 (``FORBIDDEN`` and ``TOKENS_EXCEEDED`` in
the check order) and §11 ("Missing request facts fail closed", endpoint semantics).

``build_policy`` turns user input into a canonical ``KeyPolicy`` or raises ``InvalidInput``
naming the field (and the ``index`` of the bad entry); the constructor takes stored, already
valid values. A policy compiles its lists once, so ``check_policy`` is an address parse and a
few set look-ups, one origin look-up and at most one regex match per endpoint list.

Decisions:

- **Checks and order**: ``check_policy`` runs ip, origin, allowed endpoints, blocked endpoints,
  then TLS, and the first failure wins (``FORBIDDEN`` with a ``Reason``). Verify checks
  permissions next, then ``check_tokens``. Both answer ``(Outcome.VALID, None)`` on success and
  never raise for any ``str``/``None`` facts.
- **Missing facts fail closed**: an IP allowlist, allowed origins, allowed endpoints or
  ``require_tls`` answers ``FORBIDDEN`` (``*_missing``) when the request omits that fact.
  ``tls=False`` answers ``tls_required``. A key with only ``blocked_endpoints`` lets a request
  without ``endpoint`` through. A missing ``tokens`` passes ``max_tokens_per_request``: the
  gateway may not know the count before the upstream answers (§11 lists no token fact).
- **IP networks**: IPv4 and IPv6 CIDRs; a bare address is a /32 or /128; netmask forms
  (``10.0.0.0/255.0.0.0``) are accepted; host bits are cleared (``10.1.2.3/8`` is stored as
  ``10.0.0.0/8``, shown back that way); zone ids (``%eth0``) are refused. An IPv4-mapped
  address is the IPv4 host it maps: a request from ``::ffff:10.0.0.1`` matches ``10.0.0.0/8``,
  and a configured network inside ``::ffff:0:0/96`` is stored as its IPv4 equivalent (so an
  IPv6 network such as ``::/0`` never holds IPv4 hosts). A request address's zone id is
  ignored; an ``ip`` that is not an address (brackets, a port, blanks, leading zeros) is
  ``ip_not_allowed``.
- **Origins**: ``scheme://host[:port]`` with an optional trailing ``/``; scheme and host are
  lower-cased, the default ports of http (80) and https (443) dropped, an IPv6 host is written
  compressed in brackets. Hosts are ASCII (an IDN host is given in its ``xn--`` form). Matching
  is exact after that normalization; there are no wildcards: leave the list empty to allow any
  origin. The request's origin is normalized the same way; one that cannot be is not allowed.
- **Endpoints**: a pattern is ``METHOD /path-glob``: an RFC 9110 method token (upper-cased) or
  ``*``, one space, then a path starting with ``/`` or ``*`` without blanks or control
  characters. It matches the whole request ``"METHOD /path"`` with ``fnmatch.translate``
  semantics, case-sensitively: ``*`` is any run of characters, crossing ``/`` (``GET /v1/*``
  matches ``GET /v1/a/b``), ``?`` is one character, ``[...]``/``[!...]`` are character sets.
  The request's method is upper-cased; a request endpoint that is not ``METHOD /path`` (or
  ``METHOD *``) with no blanks in the path answers ``endpoint_not_allowed`` whenever the key
  has endpoint rules, blocked-only included, so a garbled fact never slips past a block.
- **Bounds**: at most ``MAX_ENTRIES`` entries per list (before de-duplication), origins and
  patterns at most ``MAX_ENTRY_LENGTH`` characters, ``max_tokens_per_request`` ``1 …
  MAX_TOKENS`` or ``None``. Configured entries are stripped of surrounding white space and
  de-duplicated in order after normalization; request facts are taken as sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import translate
from ipaddress import (
    AddressValueError,
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from typing import Final, NamedTuple, TypeAlias

from keyrack.domain.outcome import Outcome
from keyrack.errors import InvalidInput

__all__ = [
    "MAX_ENTRIES",
    "MAX_ENTRY_LENGTH",
    "MAX_TOKENS",
    "KeyPolicy",
    "Reason",
    "RequestFacts",
    "build_policy",
    "check_policy",
    "check_tokens",
]

MAX_ENTRIES: Final = 256
MAX_ENTRY_LENGTH: Final = 1024
MAX_TOKENS: Final = 2**53 - 1

# Well above any real address text (IPv6 with a zone id), so hostile input costs nothing.
_MAX_IP_LENGTH: Final = 100
_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_MAPPED: Final = IPv6Network("::ffff:0:0/96")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_TCHAR: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_ENDPOINT_RE: Final = re.compile(rf"({_TCHAR}+) (/[^\x00-\x20\x7f]*|\*)")
_PATTERN_RE: Final = re.compile(rf"({_TCHAR}+) ([/*][^\x00-\x20\x7f]*)")
_ORIGIN_RE: Final = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?/?"
)
_IPV4_HOST_RE: Final = re.compile(r"[0-9.]+")
_LABEL_RE: Final = re.compile(r"[a-z0-9_-]{1,63}")

_Network: TypeAlias = IPv4Network | IPv6Network
# Networks grouped by prefix length: (netmask as int, network addresses as ints).
_Table: TypeAlias = tuple[tuple[int, frozenset[int]], ...]


class Reason(StrEnum):
    """Why a request was refused by the policy (machine-readable, stable)."""

    IP_NOT_ALLOWED = "ip_not_allowed"
    IP_MISSING = "ip_missing"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    ORIGIN_MISSING = "origin_missing"
    ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"
    ENDPOINT_BLOCKED = "endpoint_blocked"
    ENDPOINT_MISSING = "endpoint_missing"
    TLS_REQUIRED = "tls_required"
    TLS_MISSING = "tls_missing"
    TOKENS_EXCEEDED = "tokens_exceeded"


class RequestFacts(NamedTuple):
    """What the caller of verify tells about the request; ``None`` means not told."""

    ip: str | None = None
    origin: str | None = None
    endpoint: str | None = None
    tls: bool | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """A key's policy fields, canonical as shown to users, plus their compiled forms.

    Build it from user input with ``build_policy``; the constructor expects values that are
    already valid (as stored) and raises ``InvalidInput`` otherwise.
    """

    ip_allowlist: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allowed_endpoints: tuple[str, ...] = ()
    blocked_endpoints: tuple[str, ...] = ()
    require_tls: bool = False
    max_tokens_per_request: int | None = None
    _ipv4: _Table = field(init=False, repr=False, compare=False)
    _ipv6: _Table = field(init=False, repr=False, compare=False)
    _origins: frozenset[str] = field(init=False, repr=False, compare=False)
    _allowed: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _blocked: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = [_parse_network(text, i) for i, text in enumerate(self.ip_allowlist)]
        origins = [_parse_origin(text, i) for i, text in enumerate(self.allowed_origins)]
        set_ = object.__setattr__
        set_(self, "_ipv4", _table(n for n in networks if n.version == 4))
        set_(self, "_ipv6", _table(n for n in networks if n.version == 6))
        set_(self, "_origins", frozenset(origins))
        set_(self, "_allowed", _compile(self.allowed_endpoints, "allowed_endpoints"))
        set_(self, "_blocked", _compile(self.blocked_endpoints, "blocked_endpoints"))

    @property
    def is_empty(self) -> bool:
        """Whether the policy checks nothing, so verify can skip both policy steps."""
        return not (
            self.ip_allowlist
            or self.allowed_origins
            or self.allowed_endpoints
            or self.blocked_endpoints
            or self.require_tls
            or self.max_tokens_per_request is not None
        )


def build_policy(
    *,
    ip_allowlist: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    allowed_endpoints: Iterable[str] = (),
    blocked_endpoints: Iterable[str] = (),
    require_tls: bool = False,
    max_tokens_per_request: int | None = None,
) -> KeyPolicy:
    """Validate and normalize user input into a ``KeyPolicy`` (rules in the module docstring).

    Args:
        ip_allowlist: CIDR networks or bare addresses, IPv4 or IPv6.
        allowed_origins: ``scheme://host[:port]`` origins a request must come from.
        allowed_endpoints: ``METHOD /path-glob`` patterns a request must match one of.
        blocked_endpoints: ``METHOD /path-glob`` patterns a request must match none of.
        require_tls: Whether the request must have arrived over TLS.
        max_tokens_per_request: The most tokens one request may declare, or ``None``.

    Returns:
        The policy with canonical, de-duplicated lists.

    Raises:
        InvalidInput: A value is out of bounds or malformed; ``field`` names it and ``index``
            the offending entry of a list.
    """
    ips = _entries(ip_allowlist, "ip_allowlist")
    origins = _entries(allowed_origins, "allowed_origins")
    allowed = _entries(allowed_endpoints, "allowed_endpoints")
    blocked = _entries(blocked_endpoints, "blocked_endpoints")
    if not isinstance(require_tls, bool):
        raise InvalidInput("require_tls must be a boolean", field="require_tls")
    if max_tokens_per_request is not None and (
        type(max_tokens_per_request) is not int or not 1 <= max_tokens_per_request <= MAX_TOKENS
    ):
        raise InvalidInput(
            f"max_tokens_per_request must be an integer 1 … {MAX_TOKENS} or null",
            field="max_tokens_per_request",
        )
    return KeyPolicy(
        ip_allowlist=_unique(str(_parse_network(text, i)) for i, text in enumerate(ips)),
        allowed_origins=_unique(_parse_origin(text, i) for i, text in enumerate(origins)),
        allowed_endpoints=_unique(
            _parse_pattern(text, i, "allowed_endpoints") for i, text in enumerate(allowed)
        ),
        blocked_endpoints=_unique(
            _parse_pattern(text, i, "blocked_endpoints") for i, text in enumerate(blocked)
        ),
        require_tls=require_tls,
        max_tokens_per_request=max_tokens_per_request,
    )


def check_policy(policy: KeyPolicy, facts: RequestFacts) -> tuple[Outcome, Reason | None]:
    """Check ip, origin, endpoints and TLS in that order; the first failure wins.

    Args:
        policy: The key's policy.
        facts: What the request says about itself.

    Returns:
        ``(Outcome.FORBIDDEN, reason)`` for the first failed check, else ``(Outcome.VALID, None)``.
    """
    if policy.ip_allowlist:
        if facts.ip is None:
            return Outcome.FORBIDDEN, Reason.IP_MISSING
        if not _ip_allowed(policy, facts.ip):
            return Outcome.FORBIDDEN, Reason.IP_NOT_ALLOWED
    origins = policy._origins
    if origins:
        origin = facts.origin
        if origin is None:
            return Outcome.FORBIDDEN, Reason.ORIGIN_MISSING
        # Browsers send canonical origins, so the raw look-up usually settles it.
        if origin not in origins and _normalize_origin(origin) not in origins:
            return Outcome.FORBIDDEN, Reason.ORIGIN_NOT_ALLOWED
    allowed, blocked = policy._allowed, policy._blocked
    if allowed is not None or blocked is not None:
        reason = _endpoint_reason(allowed, blocked, facts.endpoint)
        if reason is not None:
            return Outcome.FORBIDDEN, reason
    if policy.require_tls and facts.tls is not True:
        return Outcome.FORBIDDEN, Reason.TLS_MISSING if facts.tls is None else Reason.TLS_REQUIRED
    return Outcome.VALID, None


def check_tokens(policy: KeyPolicy, facts: RequestFacts) -> tuple[Outcome, Reason | None]:
    """Check the request's declared tokens against ``max_tokens_per_request``.

    Args:
        policy: The key's policy.
        facts: What the request says about itself; ``tokens=None`` passes.

    Returns:
        ``(Outcome.TOKENS_EXCEEDED, Reason.TOKENS_EXCEEDED)`` when over the maximum, else
        ``(Outcome.VALID, None)``.
    """
    maximum, tokens = policy.max_tokens_per_request, facts.tokens
    if maximum is not None and tokens is not None and tokens > maximum:
        return Outcome.TOKENS_EXCEEDED, Reason.TOKENS_EXCEEDED
    return Outcome.VALID, None


def _ip_allowed(policy: KeyPolicy, text: str) -> bool:
    # A strict dotted quad parsed by one regex costs half of IPv4Address(text), and accepts
    # exactly what it accepts (no leading zeros, ASCII digits, octets up to 255).
    match = _IPV4_RE.fullmatch(text)
    if match is not None:
        a, b, c, d = match.groups()
        return _in_table(int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d), policy._ipv4)
    if ":" not in text or len(text) > _MAX_IP_LENGTH:
        return False
    try:
        address = IPv6Address(text)
    except AddressValueError:
        return False
    mapped = address.ipv4_mapped
    if mapped is None:
        return _in_table(int(address), policy._ipv6)
    return _in_table(int(mapped), policy._ipv4)


def _in_table(value: int, table: _Table) -> bool:
    # A plain loop: any() over a generator costs more on this hot path.
    for mask, networks in table:  # noqa: SIM110
        if value & mask in networks:
            return True
    return False


def _table(networks: Iterable[_Network]) -> _Table:
    by_mask: dict[int, set[int]] = {}
    for network in networks:
        by_mask.setdefault(int(network.netmask), set()).add(int(network.network_address))
    return tuple((mask, frozenset(values)) for mask, values in by_mask.items())


def _endpoint_reason(
    allowed: re.Pattern[str] | None, blocked: re.Pattern[str] | None, endpoint: str | None
) -> Reason | None:
    if endpoint is None:
        return None if allowed is None else Reason.ENDPOINT_MISSING
    match = _ENDPOINT_RE.fullmatch(endpoint)
    if match is None:
        return Reason.ENDPOINT_NOT_ALLOWED
    method, path = match.groups()
    endpoint = f"{method.upper()} {path}"
    if allowed is not None and allowed.match(endpoint) is None:
        return Reason.ENDPOINT_NOT_ALLOWED
    if blocked is not None and blocked.match(endpoint) is not None:
        return Reason.ENDPOINT_BLOCKED
    return None


def _normalize_origin(text: str) -> str | None:
    """The canonical form of an origin, or ``None`` when it is not one."""
    if len(text) > MAX_ENTRY_LENGTH:
        return None
    match = _ORIGIN_RE.fullmatch(text)
    if match is None:
        return None
    scheme, host, port_text = match.groups()
    scheme, host = scheme.lower(), host.lower()
    if host.startswith("["):
        try:
            host = f"[{IPv6Address(host[1:-1]).compressed}]"
        except AddressValueError:
            return None
    elif _IPV4_HOST_RE.fullmatch(host):
        try:
            host = str(IPv4Address(host))
        except AddressValueError:
            return None
    elif len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in host.split(".")):
        return None
    if port_text is None:
        return f"{scheme}://{host}"
    port = int(port_text)
    if not 1 <= port <= 65535:
        return None
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _entries(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    entries: list[str] = []
    for i, value in enumerate(values):
        if i >= MAX_ENTRIES:
            raise InvalidInput(f"{name} must have at most {MAX_ENTRIES} entries", field=name)
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a list of strings", field=name, index=i)
        entries.append(value.strip())
    return entries


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _parse_network(text: str, index: int) -> _Network:
    try:
        if "%" in text:
            raise ValueError  # a zone id names a local interface, not a network
        network = ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidInput(
            f"ip_allowlist entry {index} is not a CIDR network or an IP address "
            "(like 10.0.0.0/8 or 2001:db8::/32)",
            field="ip_allowlist",
            index=index,
        ) from None
    if isinstance(network, IPv6Network) and network.subnet_of(_MAPPED):
        address = IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return IPv4Network((address, network.prefixlen - 96))
    return network


def _parse_origin(text: str, index: int) -> str:
    text = text.strip()
    origin = _normalize_origin(text)
    if origin is not None:
        return origin
    hint = (
        "; wildcards are not supported (leave allowed_origins empty to allow any origin)"
        if "*" in text
        else ""
    )
    raise InvalidInput(
        f"allowed_origins entry {index} must be an origin like https://example.com[:port]{hint}",
        field="allowed_origins",
        index=index,
    )


def _parse_pattern(text: str, index: int, name: str) -> str:
    text = text.strip()
    match = _PATTERN_RE.fullmatch(text) if len(text) <= MAX_ENTRY_LENGTH else None
    if match is None:
        raise InvalidInput(
            f"{name} entry {index} must be 'METHOD /path-glob' (like 'POST /v1/chat/*'), "
            f"at most {MAX_ENTRY_LENGTH} characters, with no blanks in the path",
            field=name,
            index=index,
        )
    method, path = match.groups()
    return f"{method.upper()} {path}"


def _compile(patterns: tuple[str, ...], name: str) -> re.Pattern[str] | None:
    if not patterns:
        return None
    canonical = [_parse_pattern(text, i, name) for i, text in enumerate(patterns)]
    # Each translation is a self-contained "(?s:...)\Z" group, so joined with "|" they match
    # when any pattern does (CPython's fnmatch keeps this working on purpose).
    return re.compile("|".join(translate(pattern) for pattern in canonical))
