import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain import validation
from keyrack.domain.models import (
    MAX_DESCRIPTION_LENGTH,
    MAX_META_BYTES,
    MAX_META_DEPTH,
    MAX_NAME_LENGTH,
)
from tests.strategies import meta_objects


def _encoded_size(meta: dict[str, object]) -> int:
    return len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())


def _nested(depth: int) -> dict[str, object]:
    """An object nested ``depth`` levels deep, the top-level object counting as 1."""
    meta: dict[str, object] = {}
    for _ in range(depth - 1):
        meta = {"a": meta}
    return meta


class TestCheckName:
    def test_strips_surrounding_whitespace(self):
        assert "Acme key" == validation.check_name("  Acme key \t")

    def test_exactly_the_maximum_length_is_accepted(self):
        name = "n" * MAX_NAME_LENGTH

        assert name == validation.check_name(name)

    def test_one_past_the_maximum_length_is_rejected(self):
        with pytest.raises(ValueError, match=f"label must be at most {MAX_NAME_LENGTH}"):
            validation.check_name("n" * (MAX_NAME_LENGTH + 1), field="label")

    def test_length_is_counted_after_stripping(self):
        name = " " + "n" * MAX_NAME_LENGTH + " "

        assert "n" * MAX_NAME_LENGTH == validation.check_name(name)

    @pytest.mark.parametrize("name", ["", " ", "\t\n "], ids=["empty", "space", "whitespace"])
    def test_empty_is_rejected_naming_the_field(self, name):
        with pytest.raises(ValueError, match="name must not be empty"):
            validation.check_name(name)

    @pytest.mark.parametrize(
        "name",
        ["a\x00b", "a\tb", "a\nb", "a\x1fb", "a\x7fb"],
        ids=["nul", "tab", "lf", "us", "del"],
    )
    def test_control_characters_are_rejected(self, name):
        with pytest.raises(ValueError, match="control characters"):
            validation.check_name(name)

    @pytest.mark.parametrize("name", ["Ünïcødé", "名前", "a-b_c.d", "emoji 🔑"])
    def test_printable_unicode_is_accepted(self, name):
        assert name == validation.check_name(name)


class TestCheckDescription:
    def test_exactly_the_maximum_length_is_accepted(self):
        text = "d" * MAX_DESCRIPTION_LENGTH

        assert text == validation.check_description(text)

    def test_one_past_the_maximum_length_is_rejected(self):
        with pytest.raises(ValueError, match="description must be at most"):
            validation.check_description("d" * (MAX_DESCRIPTION_LENGTH + 1))

    def test_empty_is_accepted(self):
        assert "" == validation.check_description("")


class TestCheckSlug:
    @pytest.mark.parametrize(
        "slug",
        ["a", "0", "acme", "acme-corp", "a1-b2", "a--b", "a" * 63],
        ids=["one-letter", "one-digit", "word", "dashed", "mixed", "double-dash", "63-chars"],
    )
    def test_accepts(self, slug):
        assert slug == validation.check_slug(slug)

    @pytest.mark.parametrize(
        "slug",
        ["", "-acme", "acme-", "-", "Acme", "acme corp", "acme_corp", "a" * 64, "acme\n", "äcme"],
        ids=[
            "empty",
            "leading-dash",
            "trailing-dash",
            "dash-only",
            "uppercase",
            "space",
            "underscore",
            "64-chars",
            "trailing-newline",
            "unicode",
        ],
    )
    def test_rejects(self, slug):
        with pytest.raises(ValueError, match="slug must be"):
            validation.check_slug(slug)


class TestSlugify:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("Acme Corp!", "acme-corp"),
            ("  Acme   Corp  ", "acme-corp"),
            ("acme", "acme"),
            ("ACME-2024", "acme-2024"),
            ("Ünïcødé Café", "n-c-d-caf"),
            ("!!!", ""),
            ("", ""),
            ("名前", ""),
            ("a" * 70, "a" * 63),
            ("a" * 62 + " b", "a" * 62),
        ],
        ids=[
            "punctuation",
            "runs-of-spaces",
            "already-a-slug",
            "uppercase-digits",
            "non-ascii-letters",
            "only-punctuation",
            "empty",
            "no-ascii",
            "cut-to-63",
            "no-dash-left-at-the-cut",
        ],
    )
    def test_table(self, name, expected):
        assert expected == validation.slugify(name)

    @given(name=st.text(max_size=100))
    def test_result_is_empty_or_a_valid_slug(self, name):
        slug = validation.slugify(name)

        assert slug == "" or validation.check_slug(slug) == slug


class TestCheckMeta:
    def test_exactly_the_maximum_size_is_accepted(self):
        meta: dict[str, object] = {"k": "x" * (MAX_META_BYTES - len('{"k":""}'))}
        assert MAX_META_BYTES == _encoded_size(meta)

        assert meta is validation.check_meta(meta)

    def test_one_byte_past_the_maximum_size_is_rejected(self):
        meta: dict[str, object] = {"k": "x" * (MAX_META_BYTES - len('{"k":""}') + 1)}
        assert MAX_META_BYTES + 1 == _encoded_size(meta)

        with pytest.raises(ValueError, match="at most 16384 bytes"):
            validation.check_meta(meta)

    def test_size_counts_utf8_bytes_not_characters(self):
        at_limit: dict[str, object] = {"k": "é" * ((MAX_META_BYTES - 8) // 2)}
        past_limit: dict[str, object] = {"k": "é" * ((MAX_META_BYTES - 8) // 2) + "x"}
        assert MAX_META_BYTES == _encoded_size(at_limit)

        assert at_limit is validation.check_meta(at_limit)
        with pytest.raises(ValueError, match="bytes"):
            validation.check_meta(past_limit)

    def test_exactly_the_maximum_depth_is_accepted(self):
        meta = _nested(MAX_META_DEPTH)

        assert meta is validation.check_meta(meta)

    def test_one_level_past_the_maximum_depth_is_rejected(self):
        with pytest.raises(ValueError, match="at most 8 levels"):
            validation.check_meta(_nested(MAX_META_DEPTH + 1))

    def test_lists_count_as_levels(self):
        at_limit: object = []
        for _ in range(MAX_META_DEPTH - 2):
            at_limit = [at_limit]
        meta = {"a": at_limit}

        assert meta is validation.check_meta(meta)
        with pytest.raises(ValueError, match="levels"):
            validation.check_meta({"a": [at_limit]})

    def test_scalars_do_not_count_as_levels(self):
        meta: dict[str, object] = {"leaf": "scalar", "n": 1}
        for _ in range(MAX_META_DEPTH - 1):
            meta = {"a": meta, "x": [1, "two", None]}

        assert meta is validation.check_meta(meta)

    def test_very_deep_meta_is_rejected_as_too_deep(self):
        with pytest.raises(ValueError, match="levels"):
            validation.check_meta(_nested(600))

    @pytest.mark.parametrize("number", [float("nan"), float("inf")], ids=["nan", "infinity"])
    def test_non_finite_numbers_are_rejected(self, number):
        with pytest.raises(ValueError, match=r"(?i)json|nan|finite"):
            validation.check_meta({"a": number})

    def test_empty_object_is_accepted(self):
        assert {} == validation.check_meta({})

    @given(meta=meta_objects)
    def test_small_json_objects_are_accepted_unchanged(self, meta):
        assert meta == validation.check_meta(meta)
