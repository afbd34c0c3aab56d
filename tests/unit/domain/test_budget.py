from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.budget import (
    BASIS_POINTS,
    DEFAULT_SOFT_THRESHOLD_BP,
    MAX_AMOUNT,
    Budget,
    BudgetPeriod,
    basis_points,
    charge,
    current,
    period_start_ms,
)
from keyrack.errors import InvalidInput

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY, MONTH, NEVER = BudgetPeriod.DAY, BudgetPeriod.MONTH, BudgetPeriod.NEVER
EARLIEST = datetime(1971, 1, 1)  # noqa: DTZ001  # Hypothesis bounds are naive by its API
LATEST = datetime(2401, 12, 31)  # noqa: DTZ001  # Hypothesis bounds are naive by its API


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def period_key(period: BudgetPeriod, moment: datetime) -> tuple[int, ...]:
    """Which period a moment falls in, by calendar fields (the specification)."""
    moment = moment.astimezone(UTC)
    if period is DAY:
        return moment.year, moment.month, moment.day
    if period is MONTH:
        return moment.year, moment.month
    return ()


periods = st.sampled_from(list(BudgetPeriod))
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC) | offsets)
month_ends = st.builds(
    lambda year, month, hours: utc(year, month, 1) - timedelta(hours=hours),
    st.sampled_from([2000, 2023, 2024, 2100]),
    st.integers(1, 12),
    st.integers(0, 72),
)
steps = st.one_of(
    st.timedeltas(timedelta(0), timedelta(hours=30)),
    st.timedeltas(timedelta(0), timedelta(days=45)),
)


class TestBudget:
    def test_defaults_never_reset_and_warn_at_eighty_percent(self):
        budget = Budget(1_000_000)

        assert (NEVER, 8_000, 0, 0) == (
            budget.period,
            budget.soft_threshold_bp,
            budget.spent,
            budget.period_start_ms,
        )
        assert DEFAULT_SOFT_THRESHOLD_BP == budget.soft_threshold_bp
        assert 800_000 == budget.soft_limit

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"limit": -1}, "limit"),
            ({"limit": MAX_AMOUNT + 1}, "limit"),
            ({"limit": 1.5}, "limit"),
            ({"limit": True}, "limit"),
            ({"limit": 10, "spent": -1}, "spent"),
            ({"limit": 10, "spent": MAX_AMOUNT + 1}, "spent"),
            ({"limit": 10, "soft_threshold_bp": -1}, "soft_threshold"),
            ({"limit": 10, "soft_threshold_bp": BASIS_POINTS + 1}, "soft_threshold"),
            ({"limit": 10, "soft_threshold_bp": 0.8}, "soft_threshold"),
        ],
        ids=[
            "negative-limit",
            "limit-past-2^53",
            "float-limit",
            "bool-limit",
            "negative-spent",
            "spent-past-2^53",
            "negative-threshold",
            "threshold-above-one",
            "threshold-as-float",
        ],
    )
    def test_out_of_bounds_is_rejected(self, kwargs, field):
        with pytest.raises(InvalidInput) as raised:
            Budget(**kwargs)

        assert field == raised.value.details["field"]

    def test_remaining_is_zero_not_negative_when_the_limit_was_lowered(self):
        assert 0 == Budget(100, spent=150).remaining

    @pytest.mark.parametrize(
        ("limit", "bp", "soft_limit"),
        [(10, 8_000, 8), (11, 8_000, 9), (0, 8_000, 0), (7, 0, 0), (7, 10_000, 7), (3, 3_333, 1)],
        ids=["exact", "rounds-up", "zero-limit", "zero-threshold", "full-threshold", "a-third"],
    )
    def test_soft_limit_is_the_threshold_share_rounded_up(self, limit, bp, soft_limit):
        assert soft_limit == Budget(limit, soft_threshold_bp=bp).soft_limit

    @given(
        limit=st.integers(0, MAX_AMOUNT),
        bp=st.integers(0, BASIS_POINTS),
        spent=st.integers(0, MAX_AMOUNT),
    )
    def test_soft_limit_matches_exact_rational_arithmetic(self, limit, bp, spent):
        budget = Budget(limit, soft_threshold_bp=bp, spent=spent)

        assert -((-limit * bp) // BASIS_POINTS) == budget.soft_limit
        assert (spent * BASIS_POINTS >= limit * bp) == budget.soft_limit_reached
        assert budget.soft_limit <= limit


class TestBasisPoints:
    @pytest.mark.parametrize(
        ("ratio", "expected"),
        [
            (0.8, 8_000),
            (0, 0),
            (1, 10_000),
            (0.12346, 1_235),
            (Fraction(1, 3), 3_333),
            (Decimal("0.75"), 7_500),
        ],
        ids=["float", "zero", "one", "rounds-to-nearest", "fraction", "decimal"],
    )
    def test_converts_a_ratio(self, ratio, expected):
        assert expected == basis_points(ratio)

    @pytest.mark.parametrize(
        "ratio",
        [-0.01, 1.01, float("nan"), float("inf")],
        ids=["negative", "above-one", "nan", "infinity"],
    )
    def test_rejects_what_is_not_a_ratio(self, ratio):
        with pytest.raises(InvalidInput) as raised:
            basis_points(ratio)

        assert "soft_threshold" == raised.value.details["field"]


class TestPeriodStart:
    @pytest.mark.parametrize(
        ("period", "now", "expected"),
        [
            (DAY, utc(2024, 2, 29, 23, 59), utc(2024, 2, 29)),
            (DAY, utc(2024, 3, 1), utc(2024, 3, 1)),
            (MONTH, utc(2024, 2, 29, 23, 59), utc(2024, 2, 1)),
            (MONTH, utc(2024, 1, 1), utc(2024, 1, 1)),
            (MONTH, datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=2))), utc(2024, 2, 1)),
            (DAY, datetime(2024, 2, 29, 22, tzinfo=timezone(timedelta(hours=-3))), utc(2024, 3, 1)),
        ],
        ids=[
            "day",
            "day-at-midnight",
            "month-on-a-leap-day",
            "month-at-new-year",
            "east-of-utc-is-still-february",
            "west-of-utc-is-already-march",
        ],
    )
    def test_table(self, period, now, expected):
        assert ms(expected) == period_start_ms(period, now)

    def test_never_has_no_period(self):
        assert period_start_ms(NEVER, utc(2024, 1, 1)) is None

    def test_a_naive_now_is_rejected(self):
        with pytest.raises(InvalidInput) as raised:
            period_start_ms(DAY, datetime(2024, 1, 1))  # noqa: DTZ001  # the refused case itself

        assert "now" == raised.value.details["field"]

    @given(period=st.sampled_from([DAY, MONTH]), now=moments)
    def test_is_the_latest_calendar_boundary_at_or_before_now(self, period, now):
        start = EPOCH + timedelta(milliseconds=period_start_ms(period, now) or 0)

        assert start <= now
        assert period_key(period, start) == period_key(period, now)
        assert period_key(period, start - timedelta(milliseconds=1)) != period_key(period, now)


class TestCurrent:
    def test_a_new_day_starts_from_zero(self):
        budget = Budget(100, DAY, spent=90, period_start_ms=ms(utc(2024, 3, 14)))

        assert Budget(100, DAY, spent=0, period_start_ms=ms(utc(2024, 3, 15))) == current(
            budget, utc(2024, 3, 15, 0, 1)
        )

    def test_within_the_period_returns_the_same_object(self):
        budget = Budget(100, MONTH, spent=90, period_start_ms=ms(utc(2024, 3, 1)))

        assert current(budget, utc(2024, 3, 31, 23, 59)) is budget

    def test_never_rolls_over(self):
        budget = Budget(100, NEVER, spent=90)

        assert current(budget, utc(2400, 1, 1)) is budget

    def test_a_clock_behind_the_period_start_does_not_roll_over(self):
        budget = Budget(100, DAY, spent=90, period_start_ms=ms(utc(2024, 3, 15)))

        assert current(budget, utc(2024, 3, 14, 23, 59)) is budget


class TestCharge:
    def test_charges_up_to_exactly_the_limit(self):
        allowed, after, soft = charge(Budget(100, spent=40), now=EPOCH, spend=60)

        assert (True, Budget(100, spent=100), True) == (allowed, after, soft)
        assert 0 == after.remaining

    def test_a_charge_past_the_limit_is_denied_and_changes_nothing(self):
        budget = Budget(100, DAY, spent=40, period_start_ms=ms(utc(2024, 3, 15)))

        allowed, after, soft = charge(budget, now=utc(2024, 3, 15, 12), spend=61)

        assert (False, False) == (allowed, soft)
        assert after is budget

    def test_a_denied_charge_after_a_rollover_reports_the_new_period(self):
        budget = Budget(100, DAY, spent=95, period_start_ms=ms(utc(2024, 3, 14)))

        assert (False, Budget(100, DAY, spent=0, period_start_ms=ms(utc(2024, 3, 15))), False) == (
            charge(budget, now=utc(2024, 3, 15, 1), spend=101)
        )

    def test_a_new_month_allows_again(self):
        budget = Budget(100, MONTH, spent=100, period_start_ms=ms(utc(2024, 2, 1)))

        assert (True, Budget(100, MONTH, spent=30, period_start_ms=ms(utc(2024, 3, 1))), False) == (
            charge(budget, now=utc(2024, 3, 1), spend=30)
        )

    @pytest.mark.parametrize("spent", [100, 150], ids=["exhausted", "over-after-lowering"])
    def test_a_zero_spend_is_allowed_when_nothing_is_left(self, spent):
        budget = Budget(100, spent=spent)

        assert (True, budget, True) == charge(budget, now=EPOCH, spend=0)

    def test_the_soft_limit_is_reached_at_the_threshold_not_before(self):
        budget = Budget(1_000, soft_threshold_bp=7_500)

        _, budget, below = charge(budget, now=EPOCH, spend=749)
        _, budget, at = charge(budget, now=EPOCH, spend=1)

        assert (False, True) == (below, at)

    @pytest.mark.parametrize(
        "spend", [-1, MAX_AMOUNT + 1, 0.5, True], ids=["negative", "past-2^53", "float", "bool"]
    )
    def test_a_spend_out_of_bounds_is_rejected(self, spend):
        with pytest.raises(InvalidInput) as raised:
            charge(Budget(100), now=EPOCH, spend=spend)

        assert "spend" == raised.value.details["field"]

    @given(
        period=periods,
        limit=st.integers(0, 1_000),
        bp=st.integers(0, BASIS_POINTS),
        start=month_ends | moments,
        requests=st.lists(st.tuples(steps, st.integers(0, 400)), max_size=30),
    )
    def test_matches_a_per_period_model(self, period, limit, bp, start, requests):
        budget = Budget(limit, period, bp, 0, ms(start))
        spent: dict[tuple[int, ...], int] = {}
        now = start
        for step, spend in requests:
            now += step
            key = period_key(period, now)
            expected = spend <= limit - spent.get(key, 0)
            if expected:
                spent[key] = spent.get(key, 0) + spend

            allowed, budget, soft = charge(budget, now=now, spend=spend)

            assert (expected, spent.get(key, 0)) == (allowed, budget.spent)
            assert (spent.get(key, 0) * BASIS_POINTS >= limit * bp) == soft
            assert 0 <= budget.remaining == limit - budget.spent

    @given(
        period=periods,
        start=month_ends,
        requests=st.lists(st.tuples(steps, st.integers(0, 400)), max_size=30),
    )
    def test_denied_charges_change_no_later_decision(self, period, start, requests):
        def run(sequence):
            budget, moment, out = Budget(500, period, period_start_ms=ms(start)), start, []
            for step, spend, keep in sequence:
                moment += step
                if keep:
                    allowed, budget, soft = charge(budget, now=moment, spend=spend)
                    out.append((allowed, budget.spent, soft))
            return out

        full = run([(step, spend, True) for step, spend in requests])
        without_denied = run(
            [(step, spend, ok) for (step, spend), (ok, _, _) in zip(requests, full, strict=True)]
        )

        assert [decision for decision in full if decision[0]] == without_denied
