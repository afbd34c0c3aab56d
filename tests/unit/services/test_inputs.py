from dataclasses import replace

import pytest

from keyrack.domain.credits import Credits
from keyrack.domain.models import (
    MAX_CONCURRENCY,
    MAX_DESCRIPTION_LENGTH,
    MAX_LEASE_TTL_SECONDS,
    Limits,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import InvalidInput
from keyrack.services import inputs


class TestInputs:
    def test_domain_value_errors_become_invalid_input_with_the_same_message(self):
        with pytest.raises(InvalidInput, match="owner_id must not be empty"):
            inputs.name("  ", field="owner_id")

    def test_too_many_permission_names(self):
        with pytest.raises(InvalidInput, match="at most 1000"):
            inputs.slugs([f"p{i}" for i in range(1001)], field="permissions")

    def test_meta_with_non_json_values_is_refused(self):
        with pytest.raises(InvalidInput, match="only JSON values"):
            inputs.meta({"when": object()})

    def test_description_none_passes(self):
        assert inputs.description(None) is None


def _rates(*names: str) -> tuple[RateLimit, ...]:
    return tuple(RateLimit(name, 10, 60_000) for name in names)


class TestLimits:
    def test_valid_limits_pass_unchanged_without_a_moment(self):
        value = Limits(
            rate_limits=_rates("requests", "tokens"),
            credits=Credits(5, refilled_at_ms=7),
            max_concurrency=MAX_CONCURRENCY,
            lease_ttl_seconds=MAX_LEASE_TTL_SECONDS,
        )

        assert value == inputs.limits(value, now_ms=None)

    def test_a_balance_counts_as_set_at_the_given_moment(self):
        value = Limits(credits=Credits(5, refilled_at_ms=7))

        checked = inputs.limits(value, now_ms=1_800_000_000_000)

        assert Credits(5, refilled_at_ms=1_800_000_000_000) == checked.credits
        assert replace(value, credits=checked.credits) == checked

    def test_limits_without_credits_are_unchanged_at_a_moment(self):
        value = Limits(rate_limits=_rates("requests"), max_concurrency=None)

        assert value == inputs.limits(value, now_ms=1_800_000_000_000)

    def test_as_many_rate_limits_as_allowed_pass(self):
        value = Limits(rate_limits=_rates(*(f"r{i}" for i in range(inputs.MAX_RATE_LIMITS))))

        assert value == inputs.limits(value, now_ms=None)

    def test_too_many_rate_limits_are_refused(self):
        value = Limits(rate_limits=_rates(*(f"r{i}" for i in range(inputs.MAX_RATE_LIMITS + 1))))

        with pytest.raises(InvalidInput, match="at most 32 rate limits") as raised:
            inputs.limits(value, now_ms=None)

        assert {"field": "rate_limits"} == raised.value.details

    def test_repeated_rate_limit_names_are_refused(self):
        value = Limits(rate_limits=_rates("requests", "tokens", "requests"))

        with pytest.raises(InvalidInput, match="distinct") as raised:
            inputs.limits(value, now_ms=None)

        assert {"field": "rate_limits"} == raised.value.details

    @pytest.mark.parametrize(
        "concurrency",
        [0, -1, MAX_CONCURRENCY + 1, True, 2.0, "3"],
        ids=["zero", "negative", "too-large", "bool", "float", "string"],
    )
    def test_max_concurrency_out_of_bounds_is_refused(self, concurrency):
        value = Limits(max_concurrency=concurrency)

        with pytest.raises(InvalidInput, match="max_concurrency") as raised:
            inputs.limits(value, now_ms=None)

        assert {"field": "max_concurrency"} == raised.value.details

    @pytest.mark.parametrize("concurrency", [1, MAX_CONCURRENCY], ids=["one", "largest"])
    def test_max_concurrency_bounds_are_inclusive(self, concurrency):
        value = Limits(max_concurrency=concurrency)

        assert value == inputs.limits(value, now_ms=None)

    @pytest.mark.parametrize(
        "ttl",
        [0, -5, MAX_LEASE_TTL_SECONDS + 1, True, 60.0, None],
        ids=["zero", "negative", "too-large", "bool", "float", "none"],
    )
    def test_lease_ttl_out_of_bounds_is_refused(self, ttl):
        value = Limits(lease_ttl_seconds=ttl)

        with pytest.raises(InvalidInput, match="lease_ttl_seconds") as raised:
            inputs.limits(value, now_ms=None)

        assert {"field": "lease_ttl_seconds"} == raised.value.details

    def test_shortest_lease_ttl_passes(self):
        value = Limits(lease_ttl_seconds=1)

        assert value == inputs.limits(value, now_ms=None)


class TestNames:
    def test_a_bounded_name_passes_as_is(self):
        assert "chat" == inputs.name("chat")

    def test_slugs_keep_their_order(self):
        assert ("b", "a") == inputs.slugs(iter(["b", "a"]), field="roles")

    def test_a_description_is_checked(self):
        with pytest.raises(InvalidInput):
            inputs.description("d" * (MAX_DESCRIPTION_LENGTH + 1))
