import hashlib
import hmac

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keyrack.domain.hashing import MIN_PEPPER_BYTES, Peppers
from tests.strategies import api_keys

PEPPER_1 = b"\x11" * 32
PEPPER_2 = b"\x22" * 32
PEPPERS = Peppers({1: PEPPER_1, 2: PEPPER_2})


class TestPeppers:
    def test_highest_version_is_current(self):
        peppers = Peppers({3: PEPPER_1, 1: PEPPER_2, 2: b"\x33" * 32})

        assert 3 == peppers.current_version
        assert (3, 2, 1) == peppers.versions

    def test_empty_set_is_rejected(self):
        with pytest.raises(ValueError, match="at least one pepper"):
            Peppers({})

    @pytest.mark.parametrize("version", [0, -1], ids=["zero", "negative"])
    def test_version_below_one_is_rejected(self, version):
        with pytest.raises(ValueError, match="start at 1"):
            Peppers({version: PEPPER_1})

    @pytest.mark.parametrize(
        "size", [0, 1, MIN_PEPPER_BYTES - 1], ids=["empty", "one-byte", "one-short"]
    )
    def test_short_pepper_is_rejected(self, size):
        with pytest.raises(ValueError, match=f"shorter than {MIN_PEPPER_BYTES} bytes"):
            Peppers({1: PEPPER_1, 2: b"x" * size})

    def test_pepper_of_exactly_the_minimum_length_is_accepted(self):
        assert 1 == Peppers({1: b"x" * MIN_PEPPER_BYTES}).current_version

    def test_repr_shows_versions_and_never_pepper_bytes(self):
        peppers = Peppers({1: b"A" * 32, 2: b"\xfe\xed" * 16})

        text = repr(peppers)

        assert "Peppers(versions=(2, 1))" == text
        for pepper in (b"A" * 32, b"\xfe\xed" * 16):
            assert repr(pepper) not in text
            assert pepper.hex() not in text
        assert "AAAA" not in text


class TestDigest:
    @given(key=api_keys)
    def test_is_hmac_sha256_under_the_current_pepper_by_default(self, key):
        expected = hmac.new(PEPPER_2, key.encode(), hashlib.sha256).digest()

        assert expected == PEPPERS.digest(key)
        assert expected == PEPPERS.digest(key, 2)

    @given(key=api_keys)
    def test_named_version_uses_that_pepper(self, key):
        assert hmac.new(PEPPER_1, key.encode(), hashlib.sha256).digest() == PEPPERS.digest(key, 1)

    @given(key=api_keys)
    def test_differs_per_pepper_version(self, key):
        assert PEPPERS.digest(key, 1) != PEPPERS.digest(key, 2)

    @given(first=api_keys, second=api_keys)
    def test_differs_per_key(self, first, second):
        assume(first != second)

        assert PEPPERS.digest(first) != PEPPERS.digest(second)

    @given(key=st.text(max_size=200))
    def test_repeated_digests_are_equal(self, key):
        """The pepper's keyed state is copied, never consumed, by a digest."""
        assert PEPPERS.digest(key) == PEPPERS.digest(key)

    def test_unknown_version_raises(self):
        with pytest.raises(KeyError):
            PEPPERS.digest("kr_x", 9)


class TestAllDigests:
    @given(key=api_keys)
    def test_covers_every_version(self, key):
        digests = PEPPERS.all_digests(key)

        assert {PEPPERS.digest(key, 1): 1, PEPPERS.digest(key, 2): 2} == digests

    def test_single_pepper_gives_one_digest(self):
        peppers = Peppers({5: PEPPER_1})

        assert [5] == list(peppers.all_digests("kr_x").values())
