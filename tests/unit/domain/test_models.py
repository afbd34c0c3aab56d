from datetime import UTC, datetime

from keyrack.domain.models import KeySecret, KeyStatus

AT = datetime(2027, 1, 15, 8, tzinfo=UTC)


class TestKeySecret:
    def test_repr_omits_the_digest(self):
        digest = bytes.fromhex("ab" * 32)
        secret = KeySecret(
            id="sec_1",
            key_id="key_1",
            tenant_id="ten_1",
            digest=digest,
            pepper_version=1,
            start="kr_abcd",
            created_at=AT,
            expires_at=None,
        )

        text = repr(secret)

        assert "digest" not in text
        assert repr(digest) not in text
        assert "kr_abcd" in text


class TestKeyStatus:
    def test_values_are_the_wire_names(self):
        assert ["active", "disabled", "revoked"] == [str(s) for s in KeyStatus]
