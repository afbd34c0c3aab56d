import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keyrack.domain import base62, ids

widths = st.integers(min_value=1, max_value=40)


class TestBase62:
    @given(data=st.data(), width=widths)
    def test_decode_inverts_encode_fixed(self, data, width):
        number = data.draw(st.integers(min_value=0, max_value=62**width - 1))

        text = base62.encode_fixed(number, width)

        assert width == len(text)
        assert number == base62.decode(text)

    @given(data=st.data(), width=widths)
    def test_fixed_width_text_sorts_like_the_numbers(self, data, width):
        numbers = st.integers(min_value=0, max_value=62**width - 1)
        first, second = data.draw(numbers), data.draw(numbers)

        as_text = base62.encode_fixed(first, width) < base62.encode_fixed(second, width)

        assert (first < second) == as_text

    @pytest.mark.parametrize(
        ("number", "width", "expected"),
        [(0, 1, "0"), (61, 1, "z"), (62, 2, "10"), (0, 3, "000"), (62**3 - 1, 3, "zzz")],
        ids=["zero", "largest-digit", "carry", "zero-padded", "largest-of-width"],
    )
    def test_table(self, number, width, expected):
        assert expected == base62.encode_fixed(number, width)

    @pytest.mark.parametrize(
        ("number", "width"),
        [(-1, 4), (62**4, 4), (1, 0)],
        ids=["negative", "too-large-for-width", "zero-width"],
    )
    def test_out_of_range_is_rejected(self, number, width):
        with pytest.raises(ValueError, match="out of range"):
            base62.encode_fixed(number, width)

    def test_zero_width_encodes_zero_as_empty(self):
        assert "" == base62.encode_fixed(0, 0)

    def test_empty_text_decodes_to_zero(self):
        assert 0 == base62.decode("")

    @pytest.mark.parametrize("text", ["-", "a_b", " 1", "é", "\uff10"])
    def test_decode_rejects_characters_outside_the_alphabet(self, text):
        with pytest.raises(ValueError, match="not a base62 digit"):
            base62.decode(text)

    def test_alphabet_is_ascii_ordered(self):
        assert "".join(sorted(base62.ALPHABET)) == base62.ALPHABET
        assert 62 == len(set(base62.ALPHABET))


entropy = st.binary(min_size=ids.ENTROPY_BYTES, max_size=ids.ENTROPY_BYTES)
millis = st.integers(min_value=0, max_value=2**48 - 1)


class TestNewId:
    @given(now_ms=millis, entropy=entropy)
    def test_has_prefix_and_fixed_body(self, now_ms, entropy):
        made = ids.new_id("key", now_ms=now_ms, entropy=entropy)

        assert made.startswith("key_")
        assert len("key_") + 22 == len(made)
        assert ids.looks_like_id(made, "key")

    @given(first=millis, second=millis, a=entropy, b=entropy)
    def test_ids_sort_by_time(self, first, second, a, b):
        assume(first != second)
        earlier, later = sorted((first, second))

        made_earlier = ids.new_id("key", now_ms=earlier, entropy=a)
        made_later = ids.new_id("key", now_ms=later, entropy=b)

        assert made_earlier < made_later

    @given(now_ms=millis, a=entropy, b=entropy)
    def test_same_millisecond_sorts_by_entropy(self, now_ms, a, b):
        first = ids.new_id("ten", now_ms=now_ms, entropy=a)
        second = ids.new_id("ten", now_ms=now_ms, entropy=b)

        assert (a < b) == (first < second)
        assert (a == b) == (first == second)

    def test_time_wraps_at_48_bits(self):
        zero = bytes(ids.ENTROPY_BYTES)

        assert ids.new_id("k", now_ms=2**48, entropy=zero) == ids.new_id(
            "k", now_ms=0, entropy=zero
        )

    @pytest.mark.parametrize("size", [0, 9, 11], ids=["empty", "short", "long"])
    def test_wrong_entropy_length_is_rejected(self, size):
        with pytest.raises(ValueError, match="ENTROPY_BYTES"):
            ids.new_id("key", now_ms=0, entropy=bytes(size))


class TestLooksLikeId:
    VALID = ids.new_id("key", now_ms=1_800_000_000_000, entropy=bytes(range(10)))

    @pytest.mark.parametrize(
        ("text", "prefix", "expected"),
        [
            (VALID, "key", True),
            (VALID, "ten", False),
            (VALID, "ke", False),
            (VALID[:-1], "key", False),
            (VALID + "0", "key", False),
            (VALID[:-1] + "_", "key", False),
            (VALID[:-1] + "é", "key", False),
            ("", "key", False),
            ("key_", "key", False),
            ("KEY" + VALID[3:], "KEY", False),
            ("k_" + VALID[4:], "k", False),
            ("keyabc_" + VALID[4:], "keyabc", True),
            ("keyabcd_" + VALID[4:], "keyabcd", False),
        ],
        ids=[
            "valid",
            "other-type",
            "prefix-of-type",
            "short",
            "long",
            "underscore-in-body",
            "unicode-in-body",
            "empty",
            "prefix-only",
            "uppercase-type",
            "one-letter-type",
            "six-letter-type",
            "seven-letter-type",
        ],
    )
    def test_table(self, text, prefix, expected):
        assert expected == ids.looks_like_id(text, prefix)

    def test_trailing_newline_is_not_an_id(self):
        assert not ids.looks_like_id(self.VALID + "\n", "key")
