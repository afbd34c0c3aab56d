from calendar import monthrange
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.credits import (
    MAX_AMOUNT,
    NO_REFILL,
    Credits,
    Refill,
    RefillInterval,
    refill_boundary_ms,
    refill_due,
    spend,
)
from keyrack.errors import InvalidInput

DAILY_100 = Refill(RefillInterval.DAILY, 100)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0):
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def monthly(day: int, amount: int = 100) -> Refill:
    return Refill(RefillInterval.MONTHLY, amount, day)


def oracle_refill_date(refill: Refill, now: datetime) -> date | None:
    """Walk back one day at a time to the latest scheduled refill day (the specification)."""
    if refill.interval is RefillInterval.NEVER:
        return None
    day = now.astimezone(UTC).date()
    while True:
        if refill.interval is RefillInterval.DAILY:
            return day
        assert refill.day is not None
        if day.day == min(refill.day, monthrange(day.year, day.month)[1]):
            return day
        day -= timedelta(days=1)


def midnight_ms(day: date) -> int:
    return ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
# Hypothesis takes naive bounds and attaches the zone itself.
EARLIEST = datetime(1971, 1, 1)  # noqa: DTZ001  # a bound, not a moment
LATEST = datetime(2401, 12, 31)  # noqa: DTZ001  # a bound, not a moment
moments = st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC)) | st.datetimes(
    EARLIEST, LATEST, timezones=offsets
)
refills = st.one_of(
    st.just(NO_REFILL),
    st.builds(Refill, st.just(RefillInterval.DAILY), st.integers(0, 1_000)),
    st.builds(Refill, st.just(RefillInterval.MONTHLY), st.integers(0, 1_000), st.integers(1, 31)),
)
# Month ends, leap days and 30-day months are where refill arithmetic breaks: start near them.
month_ends = st.builds(
    lambda year, month, hours: (
        utc(year, month, monthrange(year, month)[1]) - timedelta(hours=hours)
    ),
    st.sampled_from([1999, 2000, 2023, 2024, 2100]),
    st.integers(1, 12),
    st.integers(0, 72),
)
steps = st.one_of(
    st.timedeltas(timedelta(0), timedelta(hours=30)),
    st.timedeltas(timedelta(0), timedelta(days=70)),
)


class TestRefill:
    @pytest.mark.parametrize(
        "refill",
        [
            Refill(),
            Refill(RefillInterval.DAILY, 0),
            Refill(RefillInterval.DAILY, MAX_AMOUNT),
            Refill(RefillInterval.MONTHLY, 5, 1),
            Refill(RefillInterval.MONTHLY, 5, 31),
        ],
        ids=["never", "daily-zero", "daily-max", "monthly-day-1", "monthly-day-31"],
    )
    def test_valid_policies_are_accepted(self, refill):
        assert refill == Refill(refill.interval, refill.amount, refill.day)

    @pytest.mark.parametrize(
        ("interval", "amount", "day", "field"),
        [
            (RefillInterval.DAILY, -1, None, "amount"),
            (RefillInterval.DAILY, MAX_AMOUNT + 1, None, "amount"),
            (RefillInterval.DAILY, True, None, "amount"),
            (RefillInterval.DAILY, 1.5, None, "amount"),
            (RefillInterval.MONTHLY, 1, None, "day"),
            (RefillInterval.MONTHLY, 1, 0, "day"),
            (RefillInterval.MONTHLY, 1, 32, "day"),
            (RefillInterval.DAILY, 1, 1, "day"),
            (RefillInterval.NEVER, 0, 1, "day"),
        ],
        ids=[
            "negative-amount",
            "amount-past-2^53",
            "bool-amount",
            "float-amount",
            "monthly-without-day",
            "monthly-day-0",
            "monthly-day-32",
            "daily-with-day",
            "never-with-day",
        ],
    )
    def test_invalid_policies_are_rejected(self, interval, amount, day, field):
        with pytest.raises(InvalidInput) as raised:
            Refill(interval, amount, day)

        assert field == raised.value.details["field"]


class TestCredits:
    @pytest.mark.parametrize("remaining", [None, 0, MAX_AMOUNT], ids=["unlimited", "zero", "max"])
    def test_valid_balances_are_accepted(self, remaining):
        assert remaining == Credits(remaining).remaining

    @pytest.mark.parametrize(
        "remaining", [-1, MAX_AMOUNT + 1, True, 2.0], ids=["negative", "past-2^53", "bool", "float"]
    )
    def test_invalid_balances_are_rejected(self, remaining):
        with pytest.raises(InvalidInput) as raised:
            Credits(remaining)

        assert "remaining" == raised.value.details["field"]


class TestRefillBoundary:
    @pytest.mark.parametrize(
        ("refill", "now", "expected"),
        [
            (DAILY_100, utc(2024, 3, 15, 13, 5), utc(2024, 3, 15)),
            (DAILY_100, utc(2024, 3, 15), utc(2024, 3, 15)),
            (monthly(1), utc(2024, 3, 15), utc(2024, 3, 1)),
            (monthly(15), utc(2024, 3, 15), utc(2024, 3, 15)),
            (monthly(16), utc(2024, 3, 15, 23, 59), utc(2024, 2, 16)),
            (monthly(15), utc(2024, 1, 10), utc(2023, 12, 15)),
            (monthly(31), utc(2024, 4, 30), utc(2024, 4, 30)),
            (monthly(31), utc(2024, 4, 29, 23, 59, second=59), utc(2024, 3, 31)),
            (monthly(31), utc(2024, 2, 29), utc(2024, 2, 29)),
            (monthly(30), utc(2024, 2, 28), utc(2024, 1, 30)),
            (monthly(29), utc(2023, 2, 28), utc(2023, 2, 28)),
            (monthly(30), utc(2023, 3, 1), utc(2023, 2, 28)),
            (monthly(31), utc(2023, 3, 30), utc(2023, 2, 28)),
            (monthly(31), utc(2023, 3, 31), utc(2023, 3, 31)),
            (monthly(31), utc(2100, 3, 1), utc(2100, 2, 28)),
            (monthly(29), utc(2000, 3, 1), utc(2000, 2, 29)),
            (
                DAILY_100,
                datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=2))),
                utc(2024, 2, 29),
            ),
        ],
        ids=[
            "daily-is-todays-midnight",
            "daily-at-midnight",
            "monthly-day-1",
            "monthly-on-the-day",
            "monthly-day-not-reached-is-last-month",
            "monthly-across-new-year",
            "day-31-in-april-is-the-30th",
            "day-31-before-april-30-is-march-31",
            "day-31-in-leap-february-is-the-29th",
            "day-30-before-leap-february-ends-is-january",
            "day-29-in-common-february-is-the-28th",
            "day-30-after-common-february-is-the-28th",
            "day-31-on-march-30-is-february-28",
            "day-31-on-march-31",
            "2100-is-not-a-leap-year",
            "2000-is-a-leap-year",
            "other-timezones-count-in-utc",
        ],
    )
    def test_table(self, refill, now, expected):
        assert ms(expected) == refill_boundary_ms(refill, now)

    def test_never_has_no_boundary(self):
        assert refill_boundary_ms(NO_REFILL, utc(2024, 1, 1)) is None

    def test_a_naive_now_is_rejected(self):
        with pytest.raises(InvalidInput) as raised:
            refill_boundary_ms(DAILY_100, datetime(2024, 1, 1))  # noqa: DTZ001  # the refused case itself

        assert "now" == raised.value.details["field"]

    @given(refill=refills, now=moments)
    def test_matches_walking_back_day_by_day(self, refill, now):
        expected = oracle_refill_date(refill, now)

        assert (None if expected is None else midnight_ms(expected)) == refill_boundary_ms(
            refill, now
        )


class TestRefillDue:
    def test_a_balance_untouched_for_years_gets_one_refill_not_one_per_period(self):
        credits = Credits(7, DAILY_100, ms(utc(2020, 1, 1)))

        assert Credits(100, DAILY_100, ms(utc(2024, 3, 15))) == refill_due(
            credits, utc(2024, 3, 15, 12)
        )

    def test_a_refill_sets_the_balance_even_below_a_topped_up_one(self):
        credits = Credits(500, DAILY_100, ms(utc(2024, 3, 14, 9)))

        assert 100 == refill_due(credits, utc(2024, 3, 15, second=1)).remaining

    def test_no_refill_within_the_same_period_returns_the_same_object(self):
        credits = Credits(3, monthly(1), ms(utc(2024, 3, 1)))

        assert refill_due(credits, utc(2024, 3, 31, 23, 59)) is credits

    def test_a_monthly_refill_comes_on_the_clamped_day(self):
        credits = Credits(3, monthly(31), ms(utc(2024, 3, 31, 8)))

        assert refill_due(credits, utc(2024, 4, 29, 23)) is credits
        assert Credits(100, monthly(31), ms(utc(2024, 4, 30))) == refill_due(
            credits, utc(2024, 4, 30)
        )

    def test_a_monthly_balance_set_earlier_today_before_the_boundary_is_refilled(self):
        credits = Credits(3, monthly(15), ms(utc(2024, 2, 10)))

        assert Credits(100, monthly(15), ms(utc(2024, 3, 15))) == refill_due(
            credits, utc(2024, 3, 15, 0, 30)
        )

    @pytest.mark.parametrize(
        "credits",
        [Credits(None, DAILY_100, 0), Credits(5, NO_REFILL, 0)],
        ids=["unlimited", "never"],
    )
    def test_unlimited_or_never_refilled_balances_are_returned_as_they_are(self, credits):
        assert refill_due(credits, utc(2030, 1, 1)) is credits

    def test_a_clock_behind_the_last_refill_never_refills(self):
        credits = Credits(3, DAILY_100, ms(utc(2024, 3, 15)))

        assert refill_due(credits, utc(2024, 3, 14, 23, 59)) is credits

    @given(refill=refills, refilled_at=moments, now=moments, remaining=st.integers(0, 2_000))
    def test_is_idempotent_and_never_refills_twice_for_one_boundary(
        self, refill, refilled_at, now, remaining
    ):
        credits = Credits(remaining, refill, ms(refilled_at))

        once = refill_due(credits, now)

        assert once == refill_due(once, now)
        assert once.remaining in {remaining, refill.amount}


class TestSpend:
    def test_spends_the_cost(self):
        assert (True, Credits(7, DAILY_100, 0)) == spend(
            Credits(10, DAILY_100, 0), now=EPOCH, cost=3
        )

    def test_may_spend_down_to_exactly_zero(self):
        assert (True, Credits(0)) == spend(Credits(3), now=EPOCH, cost=3)

    def test_a_cost_above_the_balance_is_denied_and_changes_nothing(self):
        credits = Credits(2, DAILY_100, ms(utc(2024, 3, 15)))

        allowed, after = spend(credits, now=utc(2024, 3, 15, 9), cost=3)

        assert not allowed
        assert after is credits

    def test_a_denied_spend_reports_the_refilled_balance_without_spending(self):
        credits = Credits(2, DAILY_100, ms(utc(2024, 3, 14)))

        assert (False, Credits(100, DAILY_100, ms(utc(2024, 3, 15)))) == spend(
            credits, now=utc(2024, 3, 15, 9), cost=101
        )

    def test_a_refill_that_came_due_is_spent_from(self):
        credits = Credits(0, monthly(1), ms(utc(2024, 2, 3)))

        assert (True, Credits(99, monthly(1), ms(utc(2024, 3, 1)))) == spend(
            credits, now=utc(2024, 3, 2), cost=1
        )

    def test_a_zero_cost_peek_is_allowed_on_an_empty_balance(self):
        credits = Credits(0)

        assert (True, credits) == spend(credits, now=EPOCH, cost=0)

    def test_unlimited_credits_allow_any_cost_and_stay_unlimited(self):
        credits = Credits(None)

        assert (True, credits) == spend(credits, now=EPOCH, cost=MAX_AMOUNT)

    @pytest.mark.parametrize(
        "cost", [-1, MAX_AMOUNT + 1, 1.0, True], ids=["negative", "past-2^53", "float", "bool"]
    )
    def test_a_cost_out_of_bounds_is_rejected(self, cost):
        with pytest.raises(InvalidInput) as raised:
            spend(Credits(10), now=EPOCH, cost=cost)

        assert "cost" == raised.value.details["field"]

    @given(
        refill=refills,
        start=month_ends | moments,
        initial=st.integers(0, 1_000),
        requests=st.lists(st.tuples(steps, st.integers(0, 400)), max_size=30),
    )
    def test_matches_a_day_by_day_model_across_month_ends_and_leap_years(
        self, refill, start, initial, requests
    ):
        credits = Credits(initial, refill, ms(start))
        balance, refilled_through = initial, ms(start)
        now = start
        for step, cost in requests:
            now += step
            due = oracle_refill_date(refill, now)
            if due is not None and midnight_ms(due) > refilled_through:
                balance, refilled_through = refill.amount, midnight_ms(due)
            expected_allowed = cost <= balance
            if expected_allowed:
                balance -= cost

            allowed, credits = spend(credits, now=now, cost=cost)

            assert (expected_allowed, balance) == (allowed, credits.remaining)
            assert credits.remaining is not None
            assert credits.remaining >= 0

    @given(
        refill=refills,
        start=month_ends,
        requests=st.lists(st.tuples(steps, st.integers(0, 400)), max_size=30),
    )
    def test_denied_spends_change_no_later_decision(self, refill, start, requests):
        def run(sequence):
            credits, moment, out = Credits(150, refill, ms(start)), start, []
            for step, cost, keep in sequence:
                moment += step
                if keep:
                    allowed, credits = spend(credits, now=moment, cost=cost)
                    out.append((allowed, credits.remaining))
            return out

        full = run([(step, cost, True) for step, cost in requests])
        without_denied = run(
            [(step, cost, ok) for (step, cost), (ok, _) in zip(requests, full, strict=True)]
        )

        assert [decision for decision in full if decision[0]] == without_denied
