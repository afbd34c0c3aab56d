from datetime import UTC, datetime

import pytest

from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.models import KeySecret, KeyStatus, Limits
from keyrack.domain.ratelimit import RateLimit

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


class TestLimitsIsEmpty:
    @pytest.mark.parametrize(
        ("limits", "expected"),
        [
            pytest.param(Limits(), True, id="nothing"),
            pytest.param(Limits(credits=Credits(None)), True, id="unlimited-credits"),
            pytest.param(Limits(credits_version=3, lease_ttl_seconds=5), True, id="no-counters"),
            pytest.param(Limits(rate_limits=(RateLimit("r", 1, 1000),)), False, id="rate-limit"),
            pytest.param(Limits(credits=Credits(0)), False, id="balance"),
            pytest.param(Limits(budget=Budget(10)), False, id="budget"),
            pytest.param(Limits(max_concurrency=1), False, id="concurrency"),
        ],
    )
    def test_only_limits_that_charge_something_are_not_empty(self, limits, expected):
        assert expected == limits.is_empty
