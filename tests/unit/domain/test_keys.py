import zlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keyrack.domain import keys
from keyrack.domain.base62 import ALPHABET, encode_fixed
from tests.strategies import api_keys, base62_chars, entropies, prefixes, root_keys

BODY_LEN = keys.RANDOM_DIGITS + keys.CHECKSUM_DIGITS
SAMPLE = keys.generate("kr", entropy=bytes(range(24)))
SAMPLE_ENV = keys.generate("sk_live", entropy=bytes(range(24)))
ROOT = keys.generate(keys.ROOT_PREFIX, entropy=bytes(range(24)))


def _with_checksum(head: str) -> str:
    """``head`` plus its checksum computed from the spec: base62 of CRC32, six digits."""
    return head + encode_fixed(zlib.crc32(head.encode()), keys.CHECKSUM_DIGITS)


def _parse(text: str) -> keys.ParsedKey:
    parsed = keys.parse(text)
    assert parsed is not None
    return parsed


class TestGenerate:
    @given(prefix=prefixes, entropy=entropies)
    def test_parse_returns_prefix_and_start_of_any_generated_key(self, prefix, entropy):
        key = keys.generate(prefix, entropy=entropy)

        parsed = keys.parse(key)

        assert keys.ParsedKey(prefix=prefix, start=keys.display_start(key)) == parsed
        assert keys.is_well_formed(key)

    @given(prefix=prefixes, entropy=entropies)
    def test_key_is_prefix_underscore_and_fixed_length_base62_body(self, prefix, entropy):
        key = keys.generate(prefix, entropy=entropy)

        head, body = key[: len(prefix)], key[len(prefix) + 1 :]

        assert prefix == head
        assert "_" == key[len(prefix)]
        assert BODY_LEN == len(body)
        assert set(body) <= set(ALPHABET)
        assert len(key) <= keys.MAX_KEY_LENGTH

    @given(prefix=prefixes, first=entropies, second=entropies)
    def test_different_entropy_gives_different_keys(self, prefix, first, second):
        assume(first != second)

        assert keys.generate(prefix, entropy=first) != keys.generate(prefix, entropy=second)

    @given(key=api_keys)
    def test_checksum_is_base62_crc32_of_everything_before_it(self, key):
        assert _with_checksum(key[: -keys.CHECKSUM_DIGITS]) == key

    def test_longest_prefix_gives_a_key_of_max_length(self):
        prefix = "a" * 16 + "_" + "b" * 16

        key = keys.generate(prefix, entropy=bytes(24))

        assert keys.MAX_KEY_LENGTH == len(key)
        assert keys.parse(key) is not None

    def test_all_ones_entropy_fits_the_body(self):
        key = keys.generate("kr", entropy=b"\xff" * 24)

        assert keys.parse(key) is not None

    @pytest.mark.parametrize("size", [0, 23, 25], ids=["empty", "short", "long"])
    def test_wrong_entropy_length_is_rejected(self, size):
        with pytest.raises(ValueError, match="RANDOM_BYTES"):
            keys.generate("kr", entropy=bytes(size))

    @pytest.mark.parametrize("prefix", ["", "K", "k", "1kr", "kr_", "kr-x"])
    def test_invalid_prefix_is_rejected(self, prefix):
        with pytest.raises(ValueError, match="prefix"):
            keys.generate(prefix, entropy=bytes(24))

    def test_root_prefix_generates_a_root_key(self):
        assert keys.is_root_key(ROOT)
        assert keys.ROOT_PREFIX == _parse(ROOT).prefix


class TestSingleCharacterChange:
    """Any one-character change to a key is caught by the shape or by the checksum."""

    @staticmethod
    def _assert_rejected(tampered: str) -> None:
        assert keys.parse(tampered) is None
        assert not keys.is_well_formed(tampered)

    @given(key=api_keys, data=st.data())
    def test_substitution_is_rejected(self, key, data):
        index = data.draw(st.integers(0, len(key) - 1))
        char = data.draw(base62_chars.filter(lambda c: c != key[index]))

        self._assert_rejected(key[:index] + char + key[index + 1 :])

    @given(key=api_keys, data=st.data())
    def test_deletion_is_rejected(self, key, data):
        index = data.draw(st.integers(0, len(key) - 1))

        self._assert_rejected(key[:index] + key[index + 1 :])

    @given(key=api_keys, data=st.data())
    def test_insertion_is_rejected(self, key, data):
        index = data.draw(st.integers(0, len(key)))
        char = data.draw(st.sampled_from(ALPHABET + "_"))

        self._assert_rejected(key[:index] + char + key[index:])

    @given(key=api_keys, data=st.data())
    def test_case_flip_is_rejected(self, key, data):
        letters = [i for i, c in enumerate(key) if c.isalpha()]
        index = data.draw(st.sampled_from(letters))

        self._assert_rejected(key[:index] + key[index].swapcase() + key[index + 1 :])


def _wrong_checksum(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("0" if last != "0" else "1")


TAMPERED = [
    pytest.param(SAMPLE[:-1], id="truncated-by-one"),
    pytest.param(SAMPLE[: len("kr_") + 10], id="truncated-body"),
    pytest.param("kr_", id="prefix-only"),
    pytest.param(SAMPLE.upper(), id="upper-cased"),
    pytest.param(SAMPLE.lower(), id="lower-cased"),
    pytest.param(_wrong_checksum(SAMPLE), id="wrong-checksum"),
    pytest.param(_wrong_checksum(SAMPLE_ENV), id="wrong-checksum-env-prefix"),
    pytest.param(_wrong_checksum(ROOT), id="root-key-wrong-checksum"),
    pytest.param("Kr" + SAMPLE[2:], id="foreign-prefix-uppercase"),
    pytest.param(_with_checksum("k_" + SAMPLE[3:-6]), id="foreign-prefix-one-char"),
    pytest.param(_with_checksum("1kr_" + SAMPLE[3:-6]), id="foreign-prefix-leading-digit"),
    pytest.param(_with_checksum("a" * 17 + "_" + SAMPLE[3:-6]), id="foreign-prefix-too-long"),
    pytest.param(_with_checksum("sk-live_" + SAMPLE[3:-6]), id="foreign-prefix-dash"),
    pytest.param(_with_checksum("sk_live_test_" + SAMPLE[3:-6]), id="foreign-prefix-two-envs"),
    pytest.param("sk_" + "A" * 39, id="stripe-like-shape"),
    pytest.param("", id="empty"),
    pytest.param("_", id="underscore-only"),
    pytest.param(SAMPLE[3:], id="body-without-prefix"),
    pytest.param("kr_" + "A" * 100_000, id="huge-string"),
    pytest.param(SAMPLE + "A" * 1_000_000, id="valid-key-plus-huge-tail"),
    pytest.param(SAMPLE[:-1] + "é", id="unicode-letter"),
    pytest.param(SAMPLE[:-1] + "\uff10", id="unicode-fullwidth-digit"),
    pytest.param(SAMPLE[:-1] + "\u0661", id="unicode-arabic-digit"),
    pytest.param("k\u0280_" + SAMPLE[3:], id="unicode-in-prefix"),
    pytest.param(SAMPLE + "\n", id="trailing-newline"),
    pytest.param(" " + SAMPLE, id="leading-space"),
    pytest.param(SAMPLE + " ", id="trailing-space"),
    pytest.param(SAMPLE.replace("_", "-"), id="dash-separator"),
    pytest.param(SAMPLE + "\x00", id="nul-byte"),
    pytest.param(f"Bearer {SAMPLE}", id="with-auth-scheme"),
]


class TestIsWellFormedFastPath:
    """``is_well_formed`` is a hand-written fast path; it must agree with ``parse``."""

    @given(key=api_keys, data=st.data())
    def test_agrees_with_parse_on_mutated_keys(self, key, data):
        index = data.draw(st.integers(0, len(key)))
        cut = data.draw(st.integers(0, 2))
        insert = data.draw(st.text(ALPHABET + "_-é\n ", max_size=2))
        text = key[:index] + insert + key[index + cut :]

        assert (keys.parse(text) is not None) == keys.is_well_formed(text)

    @given(text=st.text(max_size=80))
    def test_agrees_with_parse_on_any_text(self, text):
        assert (keys.parse(text) is not None) == keys.is_well_formed(text)

    def test_stays_correct_once_many_prefixes_were_seen(self):
        """The memo of prefixes already seen is bounded; past the bound every answer holds."""
        body = SAMPLE[3:]
        for n in range(5000):
            keys.is_well_formed(f"p{n:06d}_{body}")

        late = keys.generate("zlate", entropy=bytes(24))

        assert keys.is_well_formed(late)
        assert not keys.is_well_formed(_wrong_checksum(late))
        assert not keys.is_well_formed("Zlate" + late[5:])


class TestTamperTable:
    @pytest.mark.parametrize("text", TAMPERED)
    def test_parse_rejects(self, text):
        assert keys.parse(text) is None

    @pytest.mark.parametrize("text", TAMPERED)
    def test_is_well_formed_rejects(self, text):
        assert not keys.is_well_formed(text)

    @pytest.mark.parametrize(
        "text", [SAMPLE, SAMPLE_ENV, ROOT], ids=["default-prefix", "env-prefix", "root-key"]
    )
    def test_untampered_samples_parse(self, text):
        assert keys.parse(text) is not None
        assert keys.is_well_formed(text)

    def test_root_key_shape_parses_but_is_marked_root(self):
        parsed = keys.parse(ROOT)

        assert keys.ParsedKey(prefix="krroot", start=ROOT[: len("krroot_") + 4]) == parsed
        assert keys.is_root_key(ROOT)
        assert not keys.is_root_key(SAMPLE)


class TestIsValidPrefix:
    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("kr", True),
            ("sk", True),
            ("sk_live", True),
            ("sk_test", True),
            ("a1", True),
            ("a" * 16, True),
            ("a" * 16 + "_" + "b" * 16, True),
            ("krrootx", True),
            ("xkrroot", True),
            ("sk_krroot", True),
            ("krroot", False),
            ("krroot_live", False),
            ("a", False),
            ("a" * 17, False),
            ("sk_" + "b" * 17, False),
            ("sk_l", False),
            ("SK", False),
            ("Sk_live", False),
            ("sk_Live", False),
            ("1sk", False),
            ("sk_1ive", False),
            ("sk_live_x1", False),
            ("sk-live", False),
            ("sk_", False),
            ("_sk", False),
            ("", False),
            ("sk\n", False),
            ("sk ", False),
            ("s\u00e9", False),
        ],
        ids=[
            "default",
            "two-letters",
            "env-live",
            "env-test",
            "letter-digit",
            "sixteen-chars",
            "longest-with-env",
            "krroot-with-suffix",
            "krroot-as-suffix",
            "krroot-as-env",
            "root-prefix",
            "root-prefix-with-env",
            "one-char",
            "seventeen-chars",
            "env-too-long",
            "env-one-char",
            "uppercase",
            "uppercase-first",
            "uppercase-env",
            "leading-digit",
            "env-leading-digit",
            "two-envs",
            "dash",
            "trailing-underscore",
            "leading-underscore",
            "empty",
            "trailing-newline",
            "trailing-space",
            "unicode",
        ],
    )
    def test_table(self, prefix, expected):
        assert expected == keys.is_valid_prefix(prefix)

    @given(prefix=prefixes)
    def test_every_generated_prefix_is_valid(self, prefix):
        assert keys.is_valid_prefix(prefix)


class TestDisplayStart:
    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            (SAMPLE, "kr_" + SAMPLE[3:7]),
            (SAMPLE_ENV, "sk_live_" + SAMPLE_ENV[8:12]),
            (ROOT, "krroot_" + ROOT[7:11]),
        ],
        ids=["default-prefix", "env-prefix", "root-key"],
    )
    def test_table(self, key, expected):
        assert expected == keys.display_start(key)

    @given(key=api_keys)
    def test_is_what_parse_reports_and_reveals_only_four_body_digits(self, key):
        start = keys.display_start(key)

        assert _parse(key).start == start
        assert key.startswith(start)
        assert keys.START_DIGITS == len(start) - len(key) + BODY_LEN

    def test_parsed_key_repr_shows_only_prefix_and_start(self):
        parsed = keys.parse(SAMPLE)

        assert f"ParsedKey(prefix='kr', start='{SAMPLE[:7]}')" == repr(parsed)
        assert SAMPLE[7:] not in repr(parsed)


class TestIsRootKey:
    @given(key=root_keys)
    def test_every_root_key_is_root(self, key):
        assert keys.is_root_key(key)

    @given(key=api_keys)
    def test_no_tenant_key_is_root(self, key):
        assert not keys.is_root_key(key)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("krroot_", True), ("krroot", False), ("krrootx_abc", False), ("KRROOT_x", False)],
        ids=["bare-root-prefix", "no-underscore", "longer-prefix", "uppercase"],
    )
    def test_table(self, text, expected):
        assert expected == keys.is_root_key(text)


class TestRememberPrefix:
    def test_only_well_formed_prefixes_are_remembered(self):
        from keyrack.domain import keys as keyformat

        keyformat.remember_prefix("Not A Prefix_" + "A" * 39)
        assert "Not A Prefix" not in keyformat._KNOWN_PREFIXES
        keyformat.remember_prefix("zz_" + "A" * 39)
        assert "zz" in keyformat._KNOWN_PREFIXES
