import dataclasses
from fnmatch import fnmatchcase
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keyrack.domain.outcome import Outcome
from keyrack.domain.policy import (
    MAX_ENTRIES,
    MAX_ENTRY_LENGTH,
    MAX_TOKENS,
    KeyPolicy,
    Reason,
    RequestFacts,
    build_policy,
    check_policy,
    check_tokens,
)
from keyrack.errors import InvalidInput

PASS = (Outcome.VALID, None)
MAPPED = IPv6Network("::ffff:0:0/96")
LIST_FIELDS = ("ip_allowlist", "allowed_origins", "allowed_endpoints", "blocked_endpoints")
FULL = build_policy(
    ip_allowlist=["10.0.0.0/8", "2001:db8::/32"],
    allowed_origins=["https://app.example.com"],
    allowed_endpoints=["POST /v1/*", "GET /v1/models"],
    blocked_endpoints=["* /v1/admin*"],
    require_tls=True,
    max_tokens_per_request=1000,
)
GOOD = RequestFacts(
    ip="10.1.2.3",
    origin="https://app.example.com",
    endpoint="POST /v1/chat",
    tls=True,
    tokens=10,
)


def forbidden(reason: Reason) -> tuple[Outcome, Reason]:
    return Outcome.FORBIDDEN, reason


def build_one(name: str, value: Any) -> KeyPolicy:
    kwargs: dict[str, Any] = {name: value}
    return build_policy(**kwargs)


def invalid(**kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        build_policy(**kwargs)
    return raised.value


def ip_check(allowlist: list[str], ip: str | None) -> tuple[Outcome, Reason | None]:
    return check_policy(build_policy(ip_allowlist=allowlist), RequestFacts(ip=ip))


def origin_check(allowed: list[str], origin: str | None) -> tuple[Outcome, Reason | None]:
    return check_policy(build_policy(allowed_origins=allowed), RequestFacts(origin=origin))


def endpoint_check(
    endpoint: str | None, allowed: tuple[str, ...] = (), blocked: tuple[str, ...] = ()
) -> tuple[Outcome, Reason | None]:
    policy = build_policy(allowed_endpoints=allowed, blocked_endpoints=blocked)
    return check_policy(policy, RequestFacts(endpoint=endpoint))


class TestBuildPolicyNetworks:
    @pytest.mark.parametrize(
        ("given_", "stored"),
        [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.0.0.1", "10.0.0.1/32"),
            (" 10.0.0.0/8\t", "10.0.0.0/8"),
            ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),
            ("10.0.0.0/024", "10.0.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:DB8::/32", "2001:db8::/32"),
            ("2001:db8:0:0:0:0:0:1", "2001:db8::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.1.2.3/32"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
            ("::fffe:0:0/96", "::fffe:0:0/96"),
        ],
        ids=[
            "v4-cidr",
            "v4-host-bits-cleared",
            "v4-bare-address",
            "blanks-stripped",
            "netmask-form",
            "leading-zero-prefix",
            "v4-everything",
            "v6-lower-cased",
            "v6-bare-address-compressed",
            "v6-everything",
            "mapped-network-as-v4",
            "mapped-address-as-v4",
            "whole-mapped-range-as-v4",
            "next-to-mapped-range-stays-v6",
        ],
    )
    def test_networks_are_stored_canonically(self, given_, stored):
        assert (stored,) == build_policy(ip_allowlist=[given_]).ip_allowlist

    def test_duplicates_after_normalization_collapse_in_order(self):
        policy = build_policy(ip_allowlist=["10.0.0.1", "10.0.0.0/8", "10.0.0.1/32", "10.9.9.9/8"])

        assert ("10.0.0.1/32", "10.0.0.0/8") == policy.ip_allowlist

    @pytest.mark.parametrize(
        "entry",
        [
            "",
            " ",
            "1.2.3.4/33",
            "::/129",
            "10.0.0.0/-1",
            "256.0.0.0/8",
            "010.0.0.0/8",
            "1.2.3.4/ 24",
            "10.0.0.0/8/8",
            "10.0.0.0/255.0.255.0",
            "fe80::%eth0/64",
            "fe80::1%eth0",
            "example.com",
            "\u0661\u0660.0.0.0/8",
            "1" * 5000,
        ],
        ids=[
            "empty",
            "blank",
            "v4-prefix-too-long",
            "v6-prefix-too-long",
            "negative-prefix",
            "octet-too-big",
            "leading-zero-octet",
            "blank-in-prefix",
            "two-prefixes",
            "non-contiguous-mask",
            "zone-id-network",
            "zone-id-address",
            "hostname",
            "arabic-digits",
            "very-long",
        ],
    )
    def test_a_bad_network_names_field_and_index(self, entry):
        error = invalid(ip_allowlist=["10.0.0.0/8", entry])

        assert {"field": "ip_allowlist", "index": 1} == error.details
        assert "ip_allowlist entry 1" in error.message


class TestBuildPolicyOrigins:
    @pytest.mark.parametrize(
        ("given_", "stored"),
        [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://example.com:443", "https://example.com"),
            ("http://example.com:80", "http://example.com"),
            ("http://example.com:443", "http://example.com:443"),
            ("https://example.com:80", "https://example.com:80"),
            ("https://example.com:0443", "https://example.com"),
            ("https://example.com:8443/", "https://example.com:8443"),
            ("  https://example.com  ", "https://example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[0:0::1]:8080", "http://[::1]:8080"),
            ("http://[2001:DB8::1]", "http://[2001:db8::1]"),
            ("chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"),
            ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
            ("https://my_host.internal", "https://my_host.internal"),
        ],
        ids=[
            "canonical",
            "case-folded",
            "https-default-port-dropped",
            "http-default-port-dropped",
            "http-on-443-kept",
            "https-on-80-kept",
            "port-leading-zero",
            "trailing-slash",
            "blanks-stripped",
            "localhost-port",
            "ipv4-host",
            "ipv6-host-compressed",
            "ipv6-host-lower-cased",
            "other-scheme",
            "punycode",
            "underscore",
        ],
    )
    def test_origins_are_stored_canonically(self, given_, stored):
        assert (stored,) == build_policy(allowed_origins=[given_]).allowed_origins

    def test_duplicates_after_normalization_collapse(self):
        policy = build_policy(
            allowed_origins=["https://a.com", "HTTPS://A.COM:443/", "http://a.com"]
        )

        assert ("https://a.com", "http://a.com") == policy.allowed_origins

    @pytest.mark.parametrize(
        "entry",
        [
            "",
            "null",
            "example.com",
            "//example.com",
            "https://",
            "https://example.com/path",
            "https://example.com?x=1",
            "https://example.com#x",
            "https://user@example.com",
            "https://example.com:",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:123456",
            "https://bücher.example",
            "https://a..b",
            "https://example.com.",
            "https://999.1.1.1",
            "http://[::1%25eth0]",
            "http://[1::2::3]",
            "http://[gg::1]",
            "http://[::1",
            "https://" + "a" * 64 + ".com",
            "https://" + ".".join(["a" * 60] * 5),
            "https://" + "a" * MAX_ENTRY_LENGTH,
            "1https://example.com",
            "https ://example.com",
        ],
        ids=[
            "empty",
            "null",
            "no-scheme",
            "scheme-relative",
            "no-host",
            "path",
            "query",
            "fragment",
            "userinfo",
            "empty-port",
            "port-zero",
            "port-too-big",
            "port-too-long",
            "unicode-host",
            "empty-label",
            "trailing-dot",
            "bad-ipv4",
            "zone-id",
            "bad-ipv6",
            "non-hex-ipv6",
            "unclosed-bracket",
            "label-too-long",
            "host-too-long",
            "origin-too-long",
            "scheme-starts-with-digit",
            "blank-in-scheme",
        ],
    )
    def test_a_bad_origin_names_field_and_index(self, entry):
        error = invalid(allowed_origins=[entry])

        assert {"field": "allowed_origins", "index": 0} == error.details
        assert "wildcard" not in error.message

    @pytest.mark.parametrize(
        "entry", ["*", "https://*.example.com", "*://example.com"], ids=["star", "sub", "scheme"]
    )
    def test_a_wildcard_origin_is_refused_with_a_hint(self, entry):
        error = invalid(allowed_origins=[entry])

        assert "allowed_origins" == error.details["field"]
        assert "leave allowed_origins empty" in error.message


class TestBuildPolicyEndpoints:
    @pytest.mark.parametrize(
        ("given_", "stored"),
        [
            ("POST /v1/chat", "POST /v1/chat"),
            ("post /v1/Chat/*", "POST /v1/Chat/*"),
            ("* /admin/*", "* /admin/*"),
            ("OPTIONS *", "OPTIONS *"),
            ("GET *", "GET *"),
            (" get /x \n", "GET /x"),
            ("M-SEARCH /", "M-SEARCH /"),
            ("p* /x", "P* /x"),
            ("GET /a[!b-d]?/ü", "GET /a[!b-d]?/ü"),
        ],
        ids=[
            "canonical",
            "method-upper-cased-path-kept",
            "any-method",
            "asterisk-form",
            "any-path",
            "blanks-stripped",
            "token-method",
            "method-glob",
            "sets-and-unicode",
        ],
    )
    @pytest.mark.parametrize("name", ["allowed_endpoints", "blocked_endpoints"])
    def test_patterns_are_stored_canonically(self, name, given_, stored):
        assert (stored,) == getattr(build_one(name, [given_]), name)

    def test_duplicates_after_upper_casing_collapse(self):
        policy = build_policy(allowed_endpoints=["get /x", "GET /x", "GET /y"])

        assert ("GET /x", "GET /y") == policy.allowed_endpoints

    @pytest.mark.parametrize(
        "entry",
        [
            "",
            "GET",
            "/v1/chat",
            "GET v1/chat",
            "GET  /x",
            "GET\t/x",
            "GET /a b",
            "GET /a\tb",
            "GET /a\x00",
            "GET /a\x7f",
            "G(T /x",
            "GÉT /x",
            "GET ?x",
            "GET /" + "a" * (MAX_ENTRY_LENGTH - 4),
        ],
        ids=[
            "empty",
            "method-only",
            "path-only",
            "relative-path",
            "two-spaces",
            "tab-separator",
            "space-in-path",
            "tab-in-path",
            "nul-in-path",
            "del-in-path",
            "non-token-method",
            "unicode-method",
            "path-starts-with-glob-char",
            "too-long",
        ],
    )
    @pytest.mark.parametrize("name", ["allowed_endpoints", "blocked_endpoints"])
    def test_a_bad_pattern_names_field_and_index(self, name, entry):
        error = invalid(**{name: ["GET /ok", entry]})

        assert {"field": name, "index": 1} == error.details

    def test_a_pattern_of_the_maximum_length_is_accepted(self):
        pattern = "GET /" + "a" * (MAX_ENTRY_LENGTH - 5)

        assert (pattern,) == build_policy(allowed_endpoints=[pattern]).allowed_endpoints


class TestBuildPolicyBounds:
    @pytest.mark.parametrize("name", LIST_FIELDS)
    def test_too_many_entries_are_refused(self, name):
        error = invalid(**{name: ["x"] * (MAX_ENTRIES + 1)})

        assert {"field": name} == error.details
        assert str(MAX_ENTRIES) in error.message

    @pytest.mark.parametrize(
        ("name", "make"),
        [
            ("ip_allowlist", lambda i: f"10.{i // 256}.{i % 256}.0/24"),
            ("allowed_origins", lambda i: f"https://h{i}.example"),
            ("allowed_endpoints", lambda i: f"GET /{i}/*"),
            ("blocked_endpoints", lambda i: f"GET /{i}/*"),
        ],
        ids=LIST_FIELDS,
    )
    def test_the_maximum_number_of_entries_is_accepted(self, name, make):
        entries = [make(i) for i in range(MAX_ENTRIES)]

        assert MAX_ENTRIES == len(getattr(build_one(name, entries), name))

    @pytest.mark.parametrize("name", LIST_FIELDS)
    @pytest.mark.parametrize("value", ["10.0.0.0/8", b"10.0.0.0/8"], ids=["str", "bytes"])
    def test_a_string_instead_of_a_list_is_refused(self, name, value):
        assert {"field": name} == invalid(**{name: value}).details

    @pytest.mark.parametrize("name", LIST_FIELDS)
    @pytest.mark.parametrize("value", [None, 5, b"x"], ids=["none", "int", "bytes"])
    def test_a_non_string_entry_is_refused(self, name, value):
        assert {"field": name, "index": 0} == invalid(**{name: [value]}).details

    @pytest.mark.parametrize("value", [1, "true", None], ids=["int", "str", "none"])
    def test_require_tls_must_be_a_boolean(self, value):
        assert {"field": "require_tls"} == invalid(require_tls=value).details

    @pytest.mark.parametrize(
        "value",
        [0, -1, MAX_TOKENS + 1, True, False, 1.0, "5"],
        ids=["zero", "negative", "too-big", "true", "false", "float", "str"],
    )
    def test_max_tokens_out_of_bounds_is_refused(self, value):
        error = invalid(max_tokens_per_request=value)

        assert {"field": "max_tokens_per_request"} == error.details

    @pytest.mark.parametrize("value", [None, 1, MAX_TOKENS], ids=["none", "one", "max"])
    def test_max_tokens_in_bounds_is_kept(self, value):
        assert value == build_policy(max_tokens_per_request=value).max_tokens_per_request

    def test_iterables_other_than_lists_are_accepted(self):
        policy = build_policy(ip_allowlist=(n for n in ["10.0.0.0/8"]), allowed_origins=())

        assert ("10.0.0.0/8",) == policy.ip_allowlist


class TestKeyPolicy:
    @pytest.mark.parametrize(
        ("kwargs", "empty"),
        [
            ({}, True),
            ({"ip_allowlist": ["10.0.0.0/8"]}, False),
            ({"allowed_origins": ["https://a.com"]}, False),
            ({"allowed_endpoints": ["GET /"]}, False),
            ({"blocked_endpoints": ["GET /"]}, False),
            ({"require_tls": True}, False),
            ({"max_tokens_per_request": 1}, False),
        ],
        ids=["nothing", "ip", "origin", "allowed", "blocked", "tls", "tokens"],
    )
    def test_is_empty_only_without_any_rule(self, kwargs, empty):
        assert empty is build_policy(**kwargs).is_empty

    def test_the_constructor_accepts_stored_values(self):
        assert FULL == KeyPolicy(
            ip_allowlist=FULL.ip_allowlist,
            allowed_origins=FULL.allowed_origins,
            allowed_endpoints=FULL.allowed_endpoints,
            blocked_endpoints=FULL.blocked_endpoints,
            require_tls=True,
            max_tokens_per_request=1000,
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"ip_allowlist": ("nope",)},
            {"allowed_origins": ("nope",)},
            {"allowed_endpoints": ("nope",)},
            {"blocked_endpoints": ("nope",)},
        ],
        ids=LIST_FIELDS,
    )
    def test_the_constructor_refuses_invalid_values(self, kwargs):
        with pytest.raises(InvalidInput) as raised:
            KeyPolicy(**kwargs)

        assert next(iter(kwargs)) == raised.value.details["field"]

    def test_equality_hash_and_repr_show_only_the_fields(self):
        same = build_policy(ip_allowlist=["10.0.0.0/8"])

        assert same == build_policy(ip_allowlist=["10.1.0.0/8"])
        assert hash(same) == hash(build_policy(ip_allowlist=["10.0.0.0/8"]))
        assert "KeyPolicy(ip_allowlist=('10.0.0.0/8',), allowed_origins=()" in repr(same)
        assert "_ipv4" not in repr(same)

    def test_replace_recompiles(self):
        changed = dataclasses.replace(FULL, ip_allowlist=("192.168.0.0/16",))

        assert PASS == check_policy(changed, GOOD._replace(ip="192.168.1.1"))
        assert forbidden(Reason.IP_NOT_ALLOWED) == check_policy(changed, GOOD)


class TestCheckIp:
    @pytest.mark.parametrize(
        ("allowlist", "ip", "allowed"),
        [
            (["10.0.0.0/8"], "10.0.0.0", True),
            (["10.0.0.0/8"], "10.255.255.255", True),
            (["10.0.0.0/8"], "9.255.255.255", False),
            (["10.0.0.0/8"], "11.0.0.0", False),
            (["10.0.0.1"], "10.0.0.1", True),
            (["10.0.0.1"], "10.0.0.2", False),
            (["0.0.0.0/0"], "203.0.113.9", True),
            (["0.0.0.0/0"], "2001:db8::1", False),
            (["192.168.0.0/16", "10.0.0.0/8", "10.1.0.0/16"], "10.2.0.1", True),
            (["192.168.0.0/16", "10.1.0.0/16"], "10.2.0.1", False),
            (["2001:db8::/32"], "2001:db8::", True),
            (["2001:db8::/32"], "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", True),
            (["2001:db8::/32"], "2001:db9::", False),
            (["2001:db8::/32"], "2001:DB8::1", True),
            (["2001:db8::/32"], "2001:0db8:0000::1", True),
            (["2001:db8::/32"], "10.0.0.1", False),
            (["::1"], "::1", True),
            (["::/0"], "2001:db8::1", True),
            (["fe80::/10"], "fe80::1%eth0", True),
            (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
            (["10.0.0.0/8"], "::ffff:a01:203", True),
            (["10.0.0.0/8"], "::FFFF:10.1.2.3", True),
            (["10.0.0.0/8"], "::ffff:11.1.2.3", False),
            (["::ffff:10.0.0.0/104"], "10.1.2.3", True),
            (["::ffff:10.0.0.0/104"], "::ffff:10.1.2.3", True),
            (["::/0"], "::ffff:10.1.2.3", False),
            (["10.0.0.0/8"], "::10.1.2.3", False),
            (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::5", True),
        ],
        ids=[
            "v4-first",
            "v4-last",
            "v4-just-below",
            "v4-just-above",
            "v4-bare-exact",
            "v4-bare-other",
            "v4-everything",
            "v4-everything-not-v6",
            "several-prefix-lengths",
            "several-none-match",
            "v6-first",
            "v6-last",
            "v6-just-above",
            "v6-upper-case",
            "v6-long-form",
            "v6-list-v4-request",
            "v6-loopback",
            "v6-everything",
            "v6-zone-id",
            "mapped-matches-v4",
            "mapped-hex-form",
            "mapped-upper-case",
            "mapped-outside",
            "configured-mapped-v4-request",
            "configured-mapped-mapped-request",
            "mapped-is-v4-not-v6",
            "ipv4-compatible-is-not-mapped",
            "mixed-families",
        ],
    )
    def test_allowlist(self, allowlist, ip, allowed):
        expected = PASS if allowed else forbidden(Reason.IP_NOT_ALLOWED)

        assert expected == ip_check(allowlist, ip)

    @pytest.mark.parametrize(
        "ip",
        [
            "",
            " ",
            "10.0.0.1 ",
            " 10.0.0.1",
            "10.0.0.1/32",
            "10.0.0.0/8",
            "10.0.0.1:443",
            "[::ffff:10.0.0.1]",
            "010.0.0.1",
            "10.0.0",
            "\u0661\u0660.0.0.1",
            "10.0.0.1\n",
            "localhost",
            "10.0.0.1%eth0",
            "::ffff:10.0.0.1" + "%x" * 100,
            "1" * 100_000,
            ":" * 100_000,
        ],
        ids=[
            "empty",
            "blank",
            "trailing-blank",
            "leading-blank",
            "cidr",
            "network",
            "port",
            "brackets",
            "leading-zero",
            "three-octets",
            "arabic-digits",
            "newline",
            "hostname",
            "v4-zone",
            "long-zone",
            "very-long-digits",
            "very-long-colons",
        ],
    )
    def test_anything_but_an_address_is_not_allowed(self, ip):
        assert forbidden(Reason.IP_NOT_ALLOWED) == ip_check(["0.0.0.0/0", "::/0"], ip)

    def test_a_missing_ip_fails_closed(self):
        assert forbidden(Reason.IP_MISSING) == ip_check(["0.0.0.0/0"], None)

    def test_without_an_allowlist_any_ip_or_none_passes(self):
        policy = build_policy(require_tls=True)

        for ip in (None, "", "garbage", "10.0.0.1"):
            assert PASS == check_policy(policy, RequestFacts(ip=ip, tls=True))


class TestCheckOrigin:
    @pytest.mark.parametrize(
        ("allowed", "origin", "ok"),
        [
            (["https://app.example.com"], "https://app.example.com", True),
            (["https://app.example.com"], "HTTPS://APP.EXAMPLE.COM", True),
            (["https://app.example.com"], "https://app.example.com:443", True),
            (["https://app.example.com"], "https://app.example.com/", True),
            (["https://app.example.com:443"], "https://app.example.com", True),
            (["https://app.example.com"], "http://app.example.com", False),
            (["https://app.example.com"], "https://app.example.com:8443", False),
            (["https://app.example.com"], "https://evil.example.com", False),
            (["https://app.example.com"], "https://app.example.com.evil.com", False),
            (["https://example.com"], "https://sub.example.com", False),
            (["http://[::1]:3000"], "http://[0::1]:3000", True),
            (["https://a.com", "https://b.com"], "https://b.com", True),
        ],
        ids=[
            "exact",
            "case-folded",
            "default-port",
            "trailing-slash",
            "configured-default-port",
            "other-scheme",
            "other-port",
            "other-host",
            "suffix-attack",
            "subdomain",
            "ipv6-host",
            "second-entry",
        ],
    )
    def test_allowed_origins(self, allowed, origin, ok):
        expected = PASS if ok else forbidden(Reason.ORIGIN_NOT_ALLOWED)

        assert expected == origin_check(allowed, origin)

    @pytest.mark.parametrize(
        "origin",
        [
            "",
            " ",
            "null",
            "*",
            " https://a.com",
            "https://a.com/path",
            "https://a.com:99999",
            "https://ä.com",
            "https://a.com" + "/" * MAX_ENTRY_LENGTH,
            "https://" + "a" * 1_000_000,
            "\x00",
        ],
        ids=[
            "empty",
            "blank",
            "null",
            "star",
            "leading-blank",
            "path",
            "bad-port",
            "unicode",
            "too-long",
            "huge",
            "nul",
        ],
    )
    def test_a_malformed_origin_is_not_allowed(self, origin):
        assert forbidden(Reason.ORIGIN_NOT_ALLOWED) == origin_check(["https://a.com"], origin)

    def test_a_missing_origin_fails_closed(self):
        assert forbidden(Reason.ORIGIN_MISSING) == origin_check(["https://a.com"], None)


class TestCheckEndpoint:
    @pytest.mark.parametrize(
        ("pattern", "endpoint", "matches"),
        [
            ("POST /v1/chat", "POST /v1/chat", True),
            ("POST /v1/chat", "post /v1/chat", True),
            ("post /v1/chat", "PoSt /v1/chat", True),
            ("POST /v1/chat", "GET /v1/chat", False),
            ("POST /v1/chat", "POST /v1/chat/", False),
            ("POST /v1/chat", "POST /v1/Chat", False),
            ("POST /v1/*", "POST /v1/chat", True),
            ("POST /v1/*", "POST /v1/chat/completions", True),
            ("POST /v1/*", "POST /v1/", True),
            ("POST /v1/*", "POST /v1", False),
            ("POST /v1*", "POST /v1", True),
            ("POST /v1/*/items", "POST /v1/a/b/items", True),
            ("* /v1/chat", "DELETE /v1/chat", True),
            ("* *", "GET /anything/at/all", True),
            ("P* /x", "PATCH /x", True),
            ("P* /x", "GET /x", False),
            ("GET /v?", "GET /v1", True),
            ("GET /v?", "GET /v12", False),
            ("GET /v?", "GET /v/", True),
            ("GET /v[12]", "GET /v2", True),
            ("GET /v[12]", "GET /v3", False),
            ("GET /v[0-9]", "GET /v7", True),
            ("GET /v[!0-9]", "GET /v7", False),
            ("GET /v[!0-9]", "GET /vx", True),
            ("GET /[", "GET /[", True),
            ("GET /a.b", "GET /aXb", False),
            ("GET /a+b", "GET /a+b", True),
            ("GET /(x)|y", "GET /(x)|y", True),
            ("OPTIONS *", "OPTIONS *", True),
            ("GET /ü/*", "GET /ü/x", True),
        ],
        ids=[
            "exact",
            "request-method-upper-cased",
            "both-methods-any-case",
            "other-method",
            "trailing-slash-differs",
            "path-case-sensitive",
            "star-one-segment",
            "star-crosses-slash",
            "star-empty",
            "star-needs-slash",
            "star-after-prefix",
            "star-in-the-middle",
            "any-method",
            "anything",
            "method-glob",
            "method-glob-miss",
            "question-one-char",
            "question-not-two",
            "question-crosses-slash",
            "set",
            "set-miss",
            "range",
            "negated-range-miss",
            "negated-range",
            "unclosed-bracket-literal",
            "dot-is-literal",
            "plus-is-literal",
            "regex-chars-literal",
            "asterisk-form",
            "unicode-path",
        ],
    )
    def test_glob_semantics(self, pattern, endpoint, matches):
        allowed = PASS if matches else forbidden(Reason.ENDPOINT_NOT_ALLOWED)
        blocked = forbidden(Reason.ENDPOINT_BLOCKED) if matches else PASS

        assert allowed == endpoint_check(endpoint, allowed=(pattern,))
        assert blocked == endpoint_check(endpoint, blocked=(pattern,))

    @pytest.mark.parametrize(
        ("endpoint", "expected"),
        [
            ("GET /v1/models", PASS),
            ("POST /v1/chat", PASS),
            ("GET /v1/chat", forbidden(Reason.ENDPOINT_NOT_ALLOWED)),
            ("POST /v1/admin/users", forbidden(Reason.ENDPOINT_BLOCKED)),
            ("POST /v2/admin", forbidden(Reason.ENDPOINT_NOT_ALLOWED)),
            (None, forbidden(Reason.ENDPOINT_MISSING)),
        ],
        ids=["first-list-entry", "glob", "unlisted", "blocked-wins", "allowed-first", "missing"],
    )
    def test_allowed_then_blocked(self, endpoint, expected):
        allowed, blocked = ("GET /v1/models", "POST /v1/*"), ("* /v1/admin*",)

        assert expected == endpoint_check(endpoint, allowed, blocked)

    def test_blocked_only_lets_a_missing_endpoint_through(self):
        assert PASS == endpoint_check(None, blocked=("* /admin*",))

    @pytest.mark.parametrize(
        "endpoint",
        [
            "",
            " ",
            "/admin",
            "GET",
            "GET ",
            " /admin",
            "GET  /admin",
            "GET /x /admin",
            "GET\t/admin",
            "GET /admin\n",
            "GET admin",
            "GET http://h/admin",
            "G(T /admin",
            "GÉT /admin",
            "GET /ad\x00min",
        ],
        ids=[
            "empty",
            "blank",
            "no-method",
            "no-path",
            "empty-path",
            "empty-method",
            "two-spaces",
            "space-in-path",
            "tab",
            "newline",
            "relative-path",
            "absolute-form",
            "non-token-method",
            "unicode-method",
            "nul",
        ],
    )
    @pytest.mark.parametrize(
        ("allowed", "blocked"),
        [(("* *",), ()), ((), ("* /admin*",))],
        ids=["allowed-anything", "blocked-only"],
    )
    def test_a_malformed_endpoint_fails_closed(self, allowed, blocked, endpoint):
        expected = forbidden(Reason.ENDPOINT_NOT_ALLOWED)

        assert expected == endpoint_check(endpoint, allowed, blocked)

    def test_a_long_endpoint_with_many_stars_stays_fast(self):
        """The translated globs cannot backtrack exponentially."""
        endpoint = "GET /" + "a" * 100_000

        assert PASS == endpoint_check(endpoint, blocked=("* *a*a*a*a*a*a*a*a*b",))


class TestCheckTls:
    @pytest.mark.parametrize(
        ("tls", "expected"),
        [
            (True, PASS),
            (False, forbidden(Reason.TLS_REQUIRED)),
            (None, forbidden(Reason.TLS_MISSING)),
        ],
        ids=["tls", "plain", "missing"],
    )
    def test_require_tls(self, tls, expected):
        assert expected == check_policy(build_policy(require_tls=True), RequestFacts(tls=tls))

    @pytest.mark.parametrize("tls", [True, False, None], ids=["tls", "plain", "missing"])
    def test_without_require_tls_anything_passes(self, tls):
        policy = build_policy(ip_allowlist=["0.0.0.0/0"])

        assert PASS == check_policy(policy, RequestFacts(ip="1.2.3.4", tls=tls))


class TestCheckOrder:
    @pytest.mark.parametrize(
        ("facts", "reason"),
        [
            (GOOD._replace(ip="1.1.1.1", origin="x", endpoint="x", tls=False), "ip_not_allowed"),
            (GOOD._replace(ip=None, origin=None, endpoint=None, tls=None), "ip_missing"),
            (GOOD._replace(origin="https://x.com", endpoint="x", tls=False), "origin_not_allowed"),
            (GOOD._replace(origin=None, endpoint=None, tls=None), "origin_missing"),
            (GOOD._replace(endpoint="GET /v2", tls=False), "endpoint_not_allowed"),
            (GOOD._replace(endpoint="POST /v1/admin", tls=False), "endpoint_blocked"),
            (GOOD._replace(endpoint=None, tls=None), "endpoint_missing"),
            (GOOD._replace(tls=False, tokens=10**9), "tls_required"),
            (GOOD._replace(tls=None, tokens=10**9), "tls_missing"),
        ],
        ids=[
            "ip-before-everything",
            "missing-ip-before-everything",
            "origin-before-endpoint",
            "missing-origin-before-endpoint",
            "endpoint-before-tls",
            "blocked-before-tls",
            "missing-endpoint-before-tls",
            "tls-regardless-of-tokens",
            "missing-tls-regardless-of-tokens",
        ],
    )
    def test_the_first_failure_wins(self, facts, reason):
        assert forbidden(Reason(reason)) == check_policy(FULL, facts)

    def test_a_request_meeting_every_rule_passes(self):
        assert PASS == check_policy(FULL, GOOD)
        assert PASS == check_tokens(FULL, GOOD)

    def test_check_policy_ignores_tokens(self):
        assert PASS == check_policy(FULL, GOOD._replace(tokens=10**9))


class TestCheckTokens:
    @pytest.mark.parametrize(
        ("maximum", "tokens", "expected"),
        [
            (100, 99, PASS),
            (100, 100, PASS),
            (100, 101, (Outcome.TOKENS_EXCEEDED, Reason.TOKENS_EXCEEDED)),
            (100, 0, PASS),
            (100, None, PASS),
            (1, 2, (Outcome.TOKENS_EXCEEDED, Reason.TOKENS_EXCEEDED)),
            (MAX_TOKENS, MAX_TOKENS, PASS),
            (None, 10**18, PASS),
            (None, None, PASS),
        ],
        ids=[
            "below",
            "at-maximum",
            "above",
            "zero",
            "missing-passes",
            "smallest-maximum",
            "largest-maximum",
            "no-maximum",
            "nothing",
        ],
    )
    def test_max_tokens_per_request(self, maximum, tokens, expected):
        policy = build_policy(max_tokens_per_request=maximum)

        assert expected == check_tokens(policy, RequestFacts(tokens=tokens))

    def test_tokens_ignore_the_other_facts(self):
        assert PASS == check_tokens(FULL, RequestFacts(tokens=1))


# ---- properties ----------------------------------------------------------------------------

texts = st.text() | st.text(alphabet="0123456789abcdefABCDEF:.%/[]* -", max_size=60)
addresses = st.ip_addresses().map(str)
facts = st.builds(
    RequestFacts,
    ip=st.none() | texts | addresses | addresses.map(lambda a: f"::ffff:{a}"),
    origin=st.none() | texts | st.just("https://app.example.com"),
    endpoint=st.none() | texts | st.from_regex(r"[A-Za-z]{1,7} /[ -~]{0,30}", fullmatch=True),
    tls=st.none() | st.booleans(),
    tokens=st.none() | st.integers(),
)
policies = st.sampled_from(
    [
        FULL,
        KeyPolicy(),
        build_policy(ip_allowlist=["10.0.0.0/8", "::ffff:192.168.0.0/112", "fe80::/10"]),
        build_policy(blocked_endpoints=["* /admin*", "GET /[!a-z]?x*"]),
        build_policy(allowed_origins=["http://[::1]:3000", "https://a.com"], require_tls=True),
    ]
)
networks = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)),
).map(lambda pair: ip_network(pair, strict=False))


def _inside(address: IPv4Address | IPv6Address, network: IPv4Network | IPv6Network) -> bool:
    """The specification: mapped addresses and networks are their IPv4 equivalents."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(network, IPv6Network) and network.subnet_of(MAPPED):
        network = IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return address.version == network.version and address in network


class TestProperties:
    @given(policy=policies, facts=facts)
    def test_checks_never_raise_and_answer_a_known_pair(self, policy, facts):
        outcome, reason = check_policy(policy, facts)

        assert (outcome is Outcome.VALID) is (reason is None)
        assert outcome in (Outcome.VALID, Outcome.FORBIDDEN)
        assert check_tokens(policy, facts)[0] in (Outcome.VALID, Outcome.TOKENS_EXCEEDED)

    @given(facts=facts)
    def test_an_empty_policy_passes_everything(self, facts):
        assert PASS == check_policy(KeyPolicy(), facts)
        assert PASS == check_tokens(KeyPolicy(), facts)

    @given(ip=texts | addresses | addresses.map(lambda a: f"::FFFF:{a}"))
    def test_an_ip_passes_the_widest_allowlist_exactly_when_ipaddress_parses_it(self, ip):
        assume(len(ip) <= 100)
        expected: tuple[Outcome, Reason | None]
        try:
            ip_address(ip)
        except ValueError:
            expected = forbidden(Reason.IP_NOT_ALLOWED)
        else:
            expected = PASS

        assert expected == ip_check(["0.0.0.0/0", "::/0"], ip)

    @given(network=networks, data=st.data())
    def test_an_address_inside_the_network_passes(self, network, data):
        offset = data.draw(st.integers(0, network.num_addresses - 1))
        address = network.network_address + offset
        # An IPv6 network reaching into ::ffff:0:0/96 does not hold those IPv4 hosts.
        assume(_inside(address, network))

        assert PASS == ip_check([str(network)], str(address))

    @given(network=networks, address=st.ip_addresses())
    def test_an_address_outside_the_only_network_fails(self, network, address):
        assume(not _inside(address, network))

        assert forbidden(Reason.IP_NOT_ALLOWED) == ip_check([str(network)], str(address))

    @given(address=st.ip_addresses(v=4), prefix=st.integers(0, 32))
    def test_a_mapped_address_matches_like_its_ipv4_address(self, address, prefix):
        network = ip_network((address, prefix), strict=False)
        mapped = IPv6Address(f"::ffff:{address}")

        assert PASS == ip_check([str(network)], str(mapped))
        assert PASS == ip_check([f"::ffff:{network.network_address}/{prefix + 96}"], str(address))

    @given(
        name=st.sampled_from(LIST_FIELDS),
        entries=st.lists(texts | st.from_regex(r"[a-z*]{1,6} [/*][ -~]{0,20}", fullmatch=True)),
    )
    def test_build_policy_raises_only_invalid_input_and_is_idempotent(self, name, entries):
        try:
            policy = build_one(name, entries)
        except InvalidInput as error:
            refused = error.details["field"]
        else:
            refused = None
            assert policy == build_one(name, getattr(policy, name))
        assert refused in (None, name)

    @given(
        scheme=st.sampled_from(["http", "https", "HTTPS", "app"]),
        host=st.from_regex(r"[a-zA-Z0-9-]{1,10}(\.[a-zA-Z0-9-]{1,10}){0,3}", fullmatch=True).filter(
            lambda h: not h.replace(".", "").isdigit()
        )
        | st.ip_addresses(v=4).map(str)
        | st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
        port=st.none() | st.integers(1, 65535),
        slash=st.sampled_from(["", "/"]),
    )
    def test_a_configured_origin_accepts_its_own_spellings(self, scheme, host, port, slash):
        origin = f"{scheme}://{host}" + ("" if port is None else f":{port}") + slash
        policy = build_policy(allowed_origins=[origin])

        assert PASS == check_policy(policy, RequestFacts(origin=origin))
        assert PASS == check_policy(policy, RequestFacts(origin=policy.allowed_origins[0]))
        assert PASS == check_policy(policy, RequestFacts(origin=origin.upper()))

    @given(
        patterns=st.lists(
            st.from_regex(r"(\*|GET|POST) /[ab/*?\[\]!-]{0,8}", fullmatch=True),
            min_size=1,
            max_size=4,
        ),
        method=st.sampled_from(["GET", "get", "Post", "PUT"]),
        path=st.text(alphabet="ab/-!", max_size=8).map(lambda p: "/" + p),
    )
    def test_patterns_agree_with_fnmatchcase(self, patterns, method, path):
        endpoint = f"{method} {path}"
        expected = any(fnmatchcase(f"{method.upper()} {path}", p) for p in patterns)
        result = endpoint_check(endpoint, allowed=tuple(patterns))

        assert expected is (result == PASS)
