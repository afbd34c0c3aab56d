import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.permission_query import (
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    And,
    Node,
    Or,
    Perm,
    PermissionQuerySyntax,
    effective_permissions,
    evaluate,
    is_permission_name,
    parse,
    render,
)
from keyrack.errors import InvalidInput, KeyrackError

NOTHING: frozenset[str] = frozenset()


def _syntax_error(text: str) -> PermissionQuerySyntax:
    with pytest.raises(PermissionQuerySyntax) as caught:
        parse(text)
    return caught.value


def _parse_or_error(text: str) -> Node | PermissionQuerySyntax:
    """The tree, or the syntax error (any other exception propagates and fails the test)."""
    try:
        return parse(text)
    except PermissionQuerySyntax as error:
        return error


def _holds(query: str, *granted: str) -> bool:
    return evaluate(parse(query), frozenset(granted))


# --- the reference semantics, written naively from the module docstring ------------------


def _grants(granted: str, required: str) -> bool:
    """Whether one granted name satisfies one required name (O(1) string rules, no sets)."""
    if granted in (required, "*"):
        return True
    return granted.endswith(".*") and required.startswith(granted[:-1])


def _reference(node: Node, granted: frozenset[str]) -> bool:
    if isinstance(node, Perm):
        return any(_grants(g, node.name) for g in granted)
    if isinstance(node, And):
        return all(_reference(item, granted) for item in node.items)
    return any(_reference(item, granted) for item in node.items)


# --- strategies -------------------------------------------------------------------------

_segments = st.sampled_from(["a", "b", "chat", "write", "x_1", "v:2", "gpt-4", "0"])
names = st.one_of(
    st.just("*"),
    st.builds(
        lambda segs, star: ".".join(segs) + (".*" if star else ""),
        st.lists(_segments, min_size=1, max_size=3),
        st.booleans(),
    ),
)
"""Valid permission names from a small pool, so required and granted names often meet."""

granted_sets = st.frozensets(names, max_size=6)


def _branches(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    items = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.builds(And, items) | st.builds(Or, items)


queries: st.SearchStrategy[Node] = st.recursive(names.map(Perm), _branches, max_leaves=12)
"""ASTs of the shape ``parse`` returns (every And/Or has two or more items)."""

_whitespace = st.text(" \t\r\n", max_size=3)


@st.composite
def spaced_renders(draw: st.DrawFn, node: Node) -> str:
    """``render(node)`` with random whitespace (possibly none) around every parenthesis."""

    def spaced(item: Node) -> str:
        if isinstance(item, Perm):
            return item.name
        operator = " AND " if isinstance(item, And) else " OR "
        parts = []
        for child in item.items:
            if isinstance(child, Perm) or (isinstance(item, Or) and isinstance(child, And)):
                parts.append(spaced(child))
            else:
                parts.append(f"({draw(_whitespace)}{spaced(child)}{draw(_whitespace)})")
        gap = draw(_whitespace)
        return operator.replace(" ", gap + " ").join(parts)

    return draw(_whitespace) + spaced(node) + draw(_whitespace)


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("chat.write", Perm("chat.write")),
            ("documents.*", Perm("documents.*")),
            ("*", Perm("*")),
            ("models:gpt-4_turbo.v2", Perm("models:gpt-4_turbo.v2")),
            ("_.0", Perm("_.0")),
            ("a AND b AND c", And((Perm("a"), Perm("b"), Perm("c")))),
            ("a OR b OR c", Or((Perm("a"), Perm("b"), Perm("c")))),
            ("a OR b AND c", Or((Perm("a"), And((Perm("b"), Perm("c")))))),
            ("a AND b OR c", Or((And((Perm("a"), Perm("b"))), Perm("c")))),
            ("(a OR b) AND c", And((Or((Perm("a"), Perm("b"))), Perm("c")))),
            ("a AND (b AND c)", And((Perm("a"), And((Perm("b"), Perm("c")))))),
            ("((a))", Perm("a")),
            ("(a)AND(b)", And((Perm("a"), Perm("b")))),
            (
                "((a AND (b OR (c AND d))) OR e)",
                Or(
                    (
                        And((Perm("a"), Or((Perm("b"), And((Perm("c"), Perm("d"))))))),
                        Perm("e"),
                    )
                ),
            ),
            ("\t a \n AND\r\n( b\fOR\vc ) ", And((Perm("a"), Or((Perm("b"), Perm("c")))))),
            ("a.and OR or_not", Or((Perm("a.and"), Perm("or_not")))),
        ],
        ids=[
            "name",
            "wildcard-name",
            "global-wildcard",
            "every-name-character",
            "underscore-and-digit-segments",
            "and-is-n-ary",
            "or-is-n-ary",
            "and-binds-tighter-than-or-right",
            "and-binds-tighter-than-or-left",
            "parentheses-override-precedence",
            "parenthesised-group-is-its-own-node",
            "redundant-parentheses-vanish",
            "parentheses-separate-tokens",
            "nested",
            "every-ascii-whitespace",
            "keywords-inside-names-are-names",
        ],
    )
    def test_parses_to_the_expected_tree(self, text, expected):
        assert expected == parse(text)

    @pytest.mark.parametrize(
        ("text", "same_as"),
        [
            ("a OR b AND c", "a OR (b AND c)"),
            ("a AND b OR c AND d", "(a AND b) OR (c AND d)"),
            ("a   AND\n\n(b OR c)", "a AND (b OR c)"),
            ("(((a AND b)))", "a AND b"),
        ],
        ids=["or-and", "and-or-and", "whitespace", "parentheses"],
    )
    def test_equivalent_spellings_parse_alike(self, text, same_as):
        assert parse(same_as) == parse(text)

    def test_query_of_maximum_length_is_accepted(self):
        assert Perm("a" * MAX_QUERY_LENGTH) == parse("a" * MAX_QUERY_LENGTH)

    def test_maximum_nesting_is_accepted(self):
        assert Perm("a") == parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)

    def test_nesting_depth_is_restored_after_each_group(self):
        group = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH

        assert And((Perm("a"), Perm("a"))) == parse(f"{group} AND {group}")

    def test_maximum_number_of_terms_is_accepted(self):
        assert Or((Perm("a"),) * MAX_TERMS) == parse(" OR ".join(["a"] * MAX_TERMS))

    @given(queries)
    def test_rendered_tree_parses_back_to_the_same_tree(self, query):
        assert query == parse(render(query))

    @given(st.data(), queries)
    def test_whitespace_between_tokens_does_not_change_the_tree(self, data, query):
        assert query == parse(data.draw(spaced_renders(query)))

    @given(st.text(max_size=MAX_QUERY_LENGTH + 10))
    def test_arbitrary_text_parses_or_raises_query_syntax(self, text):
        outcome = _parse_or_error(text)

        if isinstance(outcome, PermissionQuerySyntax):
            assert 0 <= outcome.position <= len(text)

    @given(st.text("ab.*:_-() \t\u00a0ANDORandor;é", max_size=60))
    def test_text_near_the_grammar_parses_or_raises_with_position_in_range(self, text):
        outcome = _parse_or_error(text)

        if isinstance(outcome, PermissionQuerySyntax):
            assert 0 <= outcome.position <= len(text)
            assert {"position": outcome.position} == outcome.details
        else:
            assert outcome == parse(render(outcome))


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        ("text", "position"),
        [
            ("", 0),
            ("   ", 3),
            ("a AND", 5),
            ("a AND ", 6),
            ("a AND b AND", 11),
            ("a OR", 4),
            ("AND a", 0),
            ("OR", 0),
            ("a OR OR b", 5),
            ("a AND OR b", 6),
            ("(a", 2),
            ("((a)", 4),
            ("(a b)", 3),
            ("a)", 1),
            ("(a))", 3),
            ("()", 1),
            ("a AND ()", 7),
            ("a b", 2),
            ("a (b)", 2),
            ("a;b", 1),
            ("a AND b;", 7),
            ("é", 0),
            ("chat.wrïte", 7),
            ("a\u00a0AND b", 1),
            ("a AND \u2003b", 6),
            ("a\x00", 1),
            ("Chat.write", 0),
            ("a and b", 2),
            ("a And b", 2),
            ("a Or b", 2),
            ("or", 0),
            ("a AND or", 6),
            ("aAND b", 1),
            ("documents*", 9),
            ("documents.re*", 12),
            ("*.read", 1),
            ("documents.*.read", 11),
            ("a.**", 3),
            ("**", 1),
            ("a.", 2),
            (".a", 0),
            ("a..b", 2),
            ("-a", 0),
            ("a.:b", 2),
            ("a" * (MAX_QUERY_LENGTH + 1), MAX_QUERY_LENGTH),
            ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH),
            (" OR ".join(["a"] * (MAX_TERMS + 1)), MAX_TERMS * len("a OR ")),
            ("(" * 500 + ")" * 500, MAX_DEPTH),
        ],
        ids=[
            "empty",
            "only-whitespace",
            "a-and",
            "a-and-trailing-space",
            "trailing-and",
            "trailing-or",
            "leading-and",
            "lone-or",
            "or-or",
            "and-or",
            "unclosed-paren",
            "unclosed-outer-paren",
            "two-names-in-parens",
            "unmatched-close",
            "extra-close",
            "empty-parens",
            "empty-parens-after-and",
            "two-names",
            "name-then-paren",
            "semicolon",
            "trailing-semicolon",
            "unicode-letter",
            "unicode-inside-name",
            "unicode-space",
            "unicode-space-before-name",
            "nul",
            "upper-case-name",
            "lower-case-and",
            "mixed-case-and",
            "mixed-case-or",
            "lower-case-or-alone",
            "lower-case-or-as-operand",
            "keyword-glued-to-name",
            "star-inside-segment",
            "star-after-letters",
            "star-first-segment",
            "star-middle-segment",
            "double-star",
            "lone-double-star",
            "trailing-dot",
            "leading-dot",
            "empty-segment",
            "segment-starts-with-dash",
            "segment-starts-with-colon",
            "too-long",
            "too-deep",
            "too-many-terms",
            "hostile-nesting",
        ],
    )
    def test_error_names_the_exact_position(self, text, position):
        assert position == _syntax_error(text).position

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a AND (", "expected a permission or '(' at position 7, found the end of the query"),
            ("a OR OR b", "expected a permission or '(' at position 5, found 'OR'"),
            ("a b", "expected AND, OR or the end of the query at position 2, found 'b'"),
            ("a)", "unmatched ')' at position 1"),
            (
                "(a b",
                "expected AND, OR or ')' at position 3 (to close the '(' at position 0), found 'b'",
            ),
            ("a and b", "operators are upper-case: write 'AND' instead of 'and' at position 2"),
            ("a;b", "unexpected character ';' at position 1"),
            ("documents*", "'*' must be a whole segment (as in 'documents.*') at position 9"),
            ("*.read", "'*' must be the last segment of a permission name at position 1"),
            ("a..b", "empty segment in a permission name at position 2"),
            ("a.-b", "a name segment must start with a-z, 0-9 or '_', not '-', at position 2"),
            ("a" * 1001, "the query is longer than 1000 characters"),
            ("(" * 33, "parentheses nested deeper than 32 at position 32"),
            (" OR ".join("a" * 101), "more than 100 permissions in one query at position 500"),
        ],
        ids=[
            "missing-operand",
            "doubled-operator",
            "missing-operator",
            "unmatched-close",
            "unclosed-group",
            "lower-case-keyword",
            "bad-character",
            "star-inside-segment",
            "star-not-last",
            "empty-segment",
            "bad-segment-start",
            "too-long",
            "too-deep",
            "too-many-terms",
        ],
    )
    def test_message_says_what_was_expected_and_where(self, text, message):
        assert _syntax_error(text).message.startswith(message)

    def test_a_long_word_is_shortened_in_the_message(self):
        word = "b" * 50

        error = _syntax_error(f"a {word}")

        assert f"found '{'b' * 40}…'" in error.message
        assert word not in error.message

    def test_is_an_invalid_input_error_with_a_stable_code_and_position_detail(self):
        error = _syntax_error("a AND")

        assert isinstance(error, InvalidInput)
        assert isinstance(error, KeyrackError)
        assert "permissions.query_syntax" == error.code
        assert {"position": 5} == error.details
        assert error.message == str(error)


class TestEvaluate:
    @pytest.mark.parametrize(
        ("query", "granted", "expected"),
        [
            ("chat.write", {"chat.write"}, True),
            ("chat.write", {"chat.read"}, False),
            ("chat.write", set(), False),
            ("a OR b AND c", {"a"}, True),
            ("a OR b AND c", {"b"}, False),
            ("a OR b AND c", {"b", "c"}, True),
            ("a AND b OR c", {"c"}, True),
            ("a AND b OR c", {"a"}, False),
            ("(a OR b) AND c", {"a"}, False),
            ("(a OR b) AND c", {"b", "c"}, True),
            ("((a AND (b OR (c AND d))) OR e)", {"a", "c", "d"}, True),
            ("((a AND (b OR (c AND d))) OR e)", {"a", "c"}, False),
            ("((a AND (b OR (c AND d))) OR e)", {"e"}, True),
            ("chat.write AND (models.gpt4 OR models.*)", {"chat.write", "models.*"}, True),
            ("chat.write AND (models.gpt4 OR models.*)", {"chat.write", "models.gpt4"}, True),
            ("chat.write AND (models.gpt4 OR models.*)", {"chat.write", "models.claude"}, False),
            ("documents.read", {"documents.*"}, True),
            ("documents.read.own", {"documents.*"}, True),
            ("documents.*", {"documents.*"}, True),
            ("documents.read.*", {"documents.*"}, True),
            ("documents", {"documents.*"}, False),
            ("documentsx.read", {"documents.*"}, False),
            ("docs.read", {"documents.*"}, False),
            ("documents.*", {"documents.read"}, False),
            ("documents.*", {"documents.read", "documents.write"}, False),
            ("documents.*", {"documents.read.*"}, False),
            ("documents.read", {"documents.read.*"}, False),
            ("documents.*", {"*"}, True),
            ("documents.read.own", {"*"}, True),
            ("chat", {"*"}, True),
            ("*", {"*"}, True),
            ("*", {"documents.*", "chat.*"}, False),
            ("a.b.c.d", {"a.b.*"}, True),
            ("a.b.c.d", {"a.c.*"}, False),
        ],
        ids=[
            "exact",
            "other-name",
            "nothing-granted",
            "precedence-or-left-alone",
            "precedence-and-needs-both",
            "precedence-and-both",
            "precedence-or-right-alone",
            "precedence-and-half",
            "parens-and-needs-c",
            "parens-satisfied",
            "nested-inner-and",
            "nested-inner-and-half",
            "nested-outer-or",
            "typical-wildcard",
            "typical-specific",
            "typical-other-model",
            "granted-wildcard-child",
            "granted-wildcard-grandchild",
            "granted-wildcard-itself",
            "granted-wildcard-deeper-wildcard",
            "granted-wildcard-not-the-bare-prefix",
            "granted-wildcard-not-a-longer-prefix",
            "granted-wildcard-not-a-sibling",
            "required-wildcard-not-by-one-child",
            "required-wildcard-not-by-all-known-children",
            "required-wildcard-not-by-a-narrower-wildcard",
            "narrower-wildcard-not-its-own-prefix",
            "required-wildcard-by-global",
            "global-covers-deep-names",
            "global-covers-single-segment",
            "required-global-by-global",
            "required-global-only-by-global",
            "ancestor-wildcard-two-levels-up",
            "wildcard-of-another-branch",
        ],
    )
    def test_decides_as_the_table_says(self, query, granted, expected):
        assert expected == _holds(query, *granted)

    @given(queries, granted_sets)
    def test_agrees_with_the_naive_reference(self, query, granted):
        assert _reference(query, granted) == evaluate(query, granted)

    @given(queries, granted_sets, granted_sets)
    def test_granting_more_never_takes_access_away(self, query, granted, extra):
        if evaluate(query, granted):
            assert evaluate(query, granted | extra)

    @given(queries, granted_sets)
    def test_global_wildcard_satisfies_every_query(self, query, granted):
        assert evaluate(query, granted | {"*"})


class TestPermCovering:
    @pytest.mark.parametrize(
        ("name", "covering"),
        [
            ("*", ("*",)),
            ("chat", ("chat", "*")),
            ("a.b.c", ("a.b.c", "a.b.*", "a.*", "*")),
            ("a.*", ("a.*", "*")),
            ("a.b.*", ("a.b.*", "a.*", "*")),
        ],
        ids=["global", "one-segment", "three-segments", "wildcard", "deep-wildcard"],
    )
    def test_lists_the_name_and_each_wildcard_ancestor(self, name, covering):
        assert covering == Perm(name).covering

    def test_is_not_part_of_equality_or_repr(self):
        assert Perm("a.b") == Perm("a.b")
        assert "Perm(name='a.b')" == repr(Perm("a.b"))


class TestRender:
    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("((a OR b)) AND c", "(a OR b) AND c"),
            ("(a AND b) OR c", "a AND b OR c"),
            ("a AND (b AND c)", "a AND (b AND c)"),
            ("(a OR b) OR c", "(a OR b) OR c"),
            ("  a\tOR\nb ", "a OR b"),
        ],
        ids=["drops-redundant", "and-in-or-needs-none", "and-in-and", "or-in-or", "whitespace"],
    )
    def test_writes_canonical_text(self, text, canonical):
        assert canonical == render(parse(text))


ROLES = {"reader": ["documents.read", "chat.read"], "writer": ("documents.*",)}


class TestEffectivePermissions:
    def test_unions_direct_permissions_with_those_of_the_key_roles(self):
        assert frozenset({"usage.read", "documents.read", "chat.read", "documents.*"}) == (
            effective_permissions(["usage.read"], ROLES, ["reader", "writer"])
        )

    def test_roles_the_key_does_not_hold_grant_nothing(self):
        assert frozenset({"usage.read"}) == effective_permissions(["usage.read"], ROLES, [])

    def test_a_role_missing_from_the_tenant_grants_nothing(self):
        assert frozenset({"chat.read", "documents.read"}) == effective_permissions(
            [], ROLES, ["reader", "deleted"]
        )

    def test_nothing_gives_nothing(self):
        assert NOTHING == effective_permissions((), {}, ())

    @pytest.mark.parametrize(
        ("direct", "roles", "key_roles"),
        [("chat.write", {}, []), ([], {"r": []}, "r"), ([], {"r": "chat.write"}, ["r"])],
        ids=["direct", "key-roles", "role-permissions"],
    )
    def test_a_bare_string_is_refused_rather_than_split_into_characters(
        self, direct, roles, key_roles
    ):
        with pytest.raises(TypeError, match="not a single string"):
            effective_permissions(direct, roles, key_roles)

    @given(
        st.frozensets(names, max_size=4),
        st.dictionaries(st.sampled_from(["r1", "r2", "r3"]), st.frozensets(names, max_size=3)),
        st.frozensets(st.sampled_from(["r1", "r2", "r3", "gone"])),
    )
    def test_equals_the_naive_union(self, direct, roles, key_roles):
        expected = set(direct)
        for role in key_roles:
            expected |= roles.get(role, frozenset())

        assert frozenset(expected) == effective_permissions(direct, roles, key_roles)


class TestIsPermissionName:
    @pytest.mark.parametrize(
        "name",
        ["chat.write", "documents.*", "*", "a", "models:gpt-4_turbo.v2", "a.and", "android"],
    )
    def test_valid_names(self, name):
        assert is_permission_name(name)

    @pytest.mark.parametrize(
        "name",
        ["", "and", "OR", "Or", "AND", "a b", "a.", "a*", "*.a", "Chat", "a;b", "(a)", "é"],
    )
    def test_invalid_names(self, name):
        assert not is_permission_name(name)

    @given(names)
    def test_every_generated_name_is_valid_and_parses_to_itself(self, name):
        assert is_permission_name(name)
        assert Perm(name) == parse(name)
