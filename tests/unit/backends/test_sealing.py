import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from keyrack.backends.sealing import AesGcmSealer
from keyrack.errors import ConfigurationError, SecretUnreadable
from keyrack.services.ports import SecretSealer

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K3 = bytes(range(200, 232))
TENANT = "ab"
OBJECT = "c"
PLAINTEXT = "krsys_0123456789abcdefghijklmnopqrstuvwxyz"
HEADER = 5  # format byte + uint32 version
NONCE = 12
TAG = 16


def spec_seal(
    key: bytes,
    *,
    plaintext: bytes,
    tenant_id: str,
    object_id: str,
    version: int = 1,
    form: int = 1,
    nonce: bytes = b"\x07" * NONCE,
) -> bytes:
    """Seal by the documented layout, independently of the sealer's own code."""
    header = bytes([form]) + struct.pack(">I", version)
    tenant, obj = tenant_id.encode(), object_id.encode()
    ad = header + struct.pack(">I", len(tenant)) + tenant + struct.pack(">I", len(obj)) + obj
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


def flip(index: int) -> Callable[[bytes], bytes]:
    def mutate(sealed: bytes) -> bytes:
        data = bytearray(sealed)
        data[index] ^= 0x01
        return bytes(data)

    return mutate


def set_byte(index: int, value: int) -> Callable[[bytes], bytes]:
    def mutate(sealed: bytes) -> bytes:
        data = bytearray(sealed)
        data[index] = value
        return bytes(data)

    return mutate


def set_version(version: int) -> Callable[[bytes], bytes]:
    return lambda sealed: sealed[:1] + struct.pack(">I", version) + sealed[HEADER:]


def unchanged(sealed: bytes) -> bytes:
    return sealed


@dataclass(frozen=True)
class Tamper:
    """A change to a secret sealed under K1 (v1) for (TENANT, OBJECT), and how it is opened."""

    mutate: Callable[[bytes], bytes] = unchanged
    tenant_id: str = TENANT
    object_id: str = OBJECT
    opener_keys: tuple[tuple[int, bytes], ...] = ((1, K1),)
    has_cause: bool = True


TAMPERS = {
    # bytes changed in place
    "tampered-tag": Tamper(mutate=flip(-1)),
    "tampered-tag-first-byte": Tamper(mutate=flip(-TAG)),
    "tampered-nonce": Tamper(mutate=flip(HEADER)),
    "tampered-ciphertext": Tamper(mutate=flip(HEADER + NONCE)),
    "tampered-version-to-unknown": Tamper(mutate=flip(HEADER - 1), has_cause=False),
    "version-rewritten-to-another-configured": Tamper(
        mutate=set_version(2), opener_keys=((1, K1), (2, K2))
    ),
    "version-rewritten-high-byte": Tamper(mutate=flip(1), has_cause=False),
    "format-byte-zero": Tamper(mutate=set_byte(0, 0x00), has_cause=False),
    "format-byte-two": Tamper(mutate=set_byte(0, 0x02), has_cause=False),
    "format-byte-ff": Tamper(mutate=set_byte(0, 0xFF), has_cause=False),
    "byte-appended": Tamper(mutate=lambda s: s + b"\x00"),
    # truncation, at every length class
    "truncated-empty": Tamper(mutate=lambda s: b"", has_cause=False),
    "truncated-one-byte": Tamper(mutate=lambda s: s[:1], has_cause=False),
    "truncated-header-only": Tamper(mutate=lambda s: s[:HEADER], has_cause=False),
    "truncated-header-and-nonce": Tamper(mutate=lambda s: s[: HEADER + NONCE], has_cause=False),
    "truncated-inside-tag": Tamper(mutate=lambda s: s[: HEADER + NONCE + TAG - 1], has_cause=False),
    "truncated-tag-only-no-ciphertext": Tamper(mutate=lambda s: s[: HEADER + NONCE] + s[-TAG:]),
    "truncated-one-byte-short": Tamper(mutate=lambda s: s[:-1]),
    # associated data: the row moved to another tenant or object
    "wrong-tenant-id": Tamper(tenant_id="zz"),
    "wrong-object-id": Tamper(object_id="d"),
    "tenant-and-object-swapped": Tamper(tenant_id=OBJECT, object_id=TENANT),
    "boundary-shifted-left": Tamper(tenant_id="a", object_id="bc"),
    "boundary-shifted-to-empty-object": Tamper(tenant_id="abc", object_id=""),
    "boundary-shifted-to-empty-tenant": Tamper(tenant_id="", object_id="abc"),
    "ids-case-changed": Tamper(tenant_id="AB"),
    # keys
    "unknown-version": Tamper(opener_keys=((2, K2), (3, K3)), has_cause=False),
    "retired-version": Tamper(opener_keys=((2, K2),), has_cause=False),
    "same-version-other-key": Tamper(opener_keys=((1, K2),)),
}


@pytest.fixture
def sealed_v1() -> bytes:
    return AesGcmSealer({1: K1}).seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)


class TestRoundTrip:
    def test_works_through_the_port(self):
        port: SecretSealer = AesGcmSealer({1: K1})  # mypy checks the Protocol

        sealed = port.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        assert PLAINTEXT == port.open(sealed, tenant_id=TENANT, object_id=OBJECT)

    @given(
        plaintext=st.text(st.characters(exclude_categories=())),
        tenant_id=st.text(max_size=40),
        object_id=st.text(max_size=40),
    )
    def test_opens_what_it_sealed(self, plaintext, tenant_id, object_id):
        """Any str, lone surrogates included, comes back unchanged."""
        sealer = AesGcmSealer({1: K1})

        sealed = sealer.seal(plaintext, tenant_id=tenant_id, object_id=object_id)

        assert plaintext == sealer.open(sealed, tenant_id=tenant_id, object_id=object_id)

    def test_empty_plaintext_round_trips(self):
        sealer = AesGcmSealer({1: K1})

        sealed = sealer.seal("", tenant_id=TENANT, object_id=OBJECT)

        assert HEADER + NONCE + TAG == len(sealed)
        assert "" == sealer.open(sealed, tenant_id=TENANT, object_id=OBJECT)

    def test_plaintext_is_not_in_the_sealed_bytes(self):
        sealed = AesGcmSealer({1: K1}).seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        assert PLAINTEXT.encode() not in sealed
        assert PLAINTEXT.encode()[:8] not in sealed

    def test_each_seal_draws_a_fresh_nonce(self):
        sealer = AesGcmSealer({1: K1})

        first = sealer.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)
        second = sealer.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        assert first[HEADER : HEADER + NONCE] != second[HEADER : HEADER + NONCE]
        assert first != second


class TestFormat:
    def test_layout_matches_the_documented_format(self):
        """The stored format is a contract: rows written today must open after upgrades."""
        nonce = bytes(range(NONCE))
        sealer = AesGcmSealer({1: K1, 7: K2}, entropy=lambda n: nonce[:n])

        sealed = sealer.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        expected = spec_seal(
            K2,
            plaintext=PLAINTEXT.encode(),
            tenant_id=TENANT,
            object_id=OBJECT,
            version=7,
            nonce=nonce,
        )
        assert expected == sealed
        assert b"\x01\x00\x00\x00\x07" == sealed[:HEADER]

    def test_opens_a_secret_sealed_by_the_documented_format(self):
        sealed = spec_seal(K1, plaintext="ключ 🔑".encode(), tenant_id="t_1", object_id="key_1")

        assert "ключ 🔑" == AesGcmSealer({1: K1}).open(sealed, tenant_id="t_1", object_id="key_1")

    def test_authentic_bytes_that_are_not_utf8_are_unreadable_without_the_plaintext(self):
        sealed = spec_seal(K1, plaintext=b"\xffsecret\xfe", tenant_id=TENANT, object_id=OBJECT)

        with pytest.raises(SecretUnreadable) as caught:
            AesGcmSealer({1: K1}).open(sealed, tenant_id=TENANT, object_id=OBJECT)

        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__ is True

    def test_rejects_entropy_of_the_wrong_length(self):
        sealer = AesGcmSealer({1: K1}, entropy=lambda n: b"\x00" * (n - 1))

        with pytest.raises(ValueError, match="12 bytes"):
            sealer.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)


class TestKeyVersions:
    def test_newest_version_seals_and_old_still_opens(self):
        old = AesGcmSealer({1: K1})
        sealed_before = old.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        rotated = AesGcmSealer({1: K1, 2: K2})
        sealed_after = rotated.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        assert 2 == rotated.current_version
        assert b"\x01\x00\x00\x00\x02" == sealed_after[:HEADER]
        assert PLAINTEXT == rotated.open(sealed_before, tenant_id=TENANT, object_id=OBJECT)
        assert PLAINTEXT == rotated.open(sealed_after, tenant_id=TENANT, object_id=OBJECT)

    def test_highest_version_is_current_whatever_the_order(self):
        sealer = AesGcmSealer({3: K3, 10: K1, 2: K2})

        sealed = sealer.seal(PLAINTEXT, tenant_id=TENANT, object_id=OBJECT)

        assert 10 == sealer.current_version
        assert PLAINTEXT == AesGcmSealer({10: K1}).open(sealed, tenant_id=TENANT, object_id=OBJECT)

    def test_a_retired_version_names_the_version(self, sealed_v1):
        with pytest.raises(SecretUnreadable) as caught:
            AesGcmSealer({2: K2}).open(sealed_v1, tenant_id=TENANT, object_id=OBJECT)

        assert {"key_version": 1} == caught.value.details
        assert "not configured" in caught.value.message


class TestTampering:
    @pytest.mark.parametrize("tamper", list(TAMPERS.values()), ids=list(TAMPERS))
    def test_is_unreadable(self, sealed_v1, tamper):
        opener = AesGcmSealer(dict(tamper.opener_keys))
        changed = tamper.mutate(sealed_v1)

        with pytest.raises(SecretUnreadable) as caught:
            opener.open(changed, tenant_id=tamper.tenant_id, object_id=tamper.object_id)

        if tamper.has_cause:
            assert isinstance(caught.value.__cause__, InvalidTag)
        else:
            assert caught.value.__cause__ is None
        assert "secret.unreadable" == caught.value.code
        assert PLAINTEXT not in str(caught.value)

    def test_the_untampered_row_opens(self, sealed_v1):
        """The baseline of the table above: only the change makes the difference."""
        assert PLAINTEXT == AesGcmSealer({1: K1}).open(
            sealed_v1, tenant_id=TENANT, object_id=OBJECT
        )

    def test_opens_memoryview_input(self, sealed_v1):
        """Some database drivers hand back a memoryview for binary columns."""
        opened = AesGcmSealer({1: K1}).open(
            memoryview(sealed_v1),  # type: ignore[arg-type]  # deliberately not bytes
            tenant_id=TENANT,
            object_id=OBJECT,
        )

        assert PLAINTEXT == opened


class TestConfiguration:
    @pytest.mark.parametrize(
        "keys",
        [
            {},
            {1: b""},
            {1: b"\x00" * 16},
            {1: b"\x00" * 31},
            {1: b"\x00" * 33},
            {1: b"\x00" * 64},
            {1: K1, 2: b"\x00" * 24},
            {0: K1},
            {-1: K1},
            {2**32: K1},
            {1: "k" * 32},
        ],
        ids=[
            "none",
            "empty-key",
            "aes-128-size",
            "one-byte-short",
            "one-byte-long",
            "64-bytes",
            "one-bad-among-good",
            "version-zero",
            "version-negative",
            "version-over-uint32",
            "str-not-bytes",
        ],
    )
    def test_rejects(self, keys):
        with pytest.raises(ConfigurationError):
            AesGcmSealer(keys)

    def test_message_names_the_version_never_the_key(self):
        bad = b"\xab" * 31

        with pytest.raises(ConfigurationError) as caught:
            AesGcmSealer({1: K1, 4: bad})

        assert "version 4" in caught.value.message
        assert bad.hex() not in str(caught.value)
        assert repr(bad) not in str(caught.value)
        assert repr(bad)[2:12] not in str(caught.value)


class TestSecrecy:
    def test_repr_shows_versions_not_keys(self):
        sealer = AesGcmSealer({1: K1, 2: K2})

        text = f"{sealer!r} {sealer!s}"

        assert "AesGcmSealer(versions=[1, 2], current=2)" == repr(sealer)
        for key in (K1, K2):
            assert key.hex() not in text
            assert repr(key) not in text

    def test_has_no_instance_dict_to_dump(self):
        assert not hasattr(AesGcmSealer({1: K1}), "__dict__")
