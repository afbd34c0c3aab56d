from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.models import KeyRecord, KeyStatus
from keyrack.domain.verification import NOT_FOUND, Outcome, VerifyResult, check_state

NOW = 1_800_000_000.0

RECORD = KeyRecord(
    key_id="key_1",
    tenant_id="ten_1",
    secret_id="sec_1",
    pepper_version=1,
    status=KeyStatus.ACTIVE,
    valid_until=None,
    name="k",
    owner_id=None,
    identity_id=None,
    meta={},
    permissions=(),
    roles=(),
    expires_at=None,
)


class TestCheckState:
    @pytest.mark.parametrize(
        ("status", "valid_until", "expected"),
        [
            (KeyStatus.ACTIVE, None, Outcome.VALID),
            (KeyStatus.ACTIVE, NOW + 1, Outcome.VALID),
            (KeyStatus.ACTIVE, NOW + 1e-3, Outcome.VALID),
            (KeyStatus.ACTIVE, NOW, Outcome.EXPIRED),
            (KeyStatus.ACTIVE, NOW - 1, Outcome.EXPIRED),
            (KeyStatus.DISABLED, None, Outcome.DISABLED),
            (KeyStatus.REVOKED, None, Outcome.REVOKED),
            (KeyStatus.DISABLED, NOW - 1, Outcome.DISABLED),
            (KeyStatus.REVOKED, NOW - 1, Outcome.REVOKED),
        ],
        ids=[
            "active-never-expires",
            "active-before-expiry",
            "active-just-before-expiry",
            "expiry-boundary-is-expired",
            "active-after-expiry",
            "disabled",
            "revoked",
            "disabled-wins-over-expired",
            "revoked-wins-over-expired",
        ],
    )
    def test_table(self, status, valid_until, expected):
        record = replace(RECORD, status=status, valid_until=valid_until)

        assert expected is check_state(record, now=NOW)

    @given(valid_until=st.floats(0, 4e9), now=st.floats(0, 4e9))
    def test_active_key_is_valid_exactly_before_valid_until(self, valid_until, now):
        record = replace(RECORD, valid_until=valid_until)

        expected = Outcome.VALID if now < valid_until else Outcome.EXPIRED

        assert expected is check_state(record, now=now)


class TestVerifyResult:
    def test_only_valid_outcome_is_valid(self):
        assert [Outcome.VALID] == [o for o in Outcome if VerifyResult(o, RECORD).valid]

    def test_not_found_has_no_record(self):
        assert VerifyResult(Outcome.NOT_FOUND, None) == NOT_FOUND
        assert not NOT_FOUND.valid

    def test_outcomes_are_in_the_contract_check_order(self):
        assert [
            "NOT_FOUND", "DISABLED", "REVOKED", "EXPIRED", "FORBIDDEN",
            "INSUFFICIENT_PERMISSIONS", "TOKENS_EXCEEDED", "RATE_LIMITED",
            "CONCURRENCY_LIMITED", "USAGE_EXCEEDED", "BUDGET_EXCEEDED",
            "LIMITS_UNAVAILABLE",  # ours: the shared limit store is down (fail closed)
            "VALID",
        ] == [str(o) for o in Outcome]  # fmt: skip
