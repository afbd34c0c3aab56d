from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.ratelimit import (
    MAX_COST,
    MAX_LIMIT,
    MAX_WINDOW_MS,
    MIN_WINDOW_MS,
    SUBWINDOWS,
    Decision,
    RateLimit,
    State,
    check,
    check_all,
)
from keyrack.errors import InvalidInput

T0 = 1_800_000_000_000
"""An epoch-millisecond instant on a bucket boundary for every window used below."""

EMPTY = State()
PER_SECOND = RateLimit("requests", 2, 1_000)  # bucket_ms == 50


def peek(state: State, limit: RateLimit, now_ms: int) -> Decision:
    return check(state, limit, now_ms=now_ms, cost=0)


def run(limit: RateLimit, requests, state: State = EMPTY):
    """Feed ``(now_ms, cost)`` pairs through ``check``; return the decisions and final state."""
    decisions = []
    for now_ms, cost in requests:
        decision = check(state, limit, now_ms=now_ms, cost=cost)
        decisions.append(decision)
        state = decision.state
    return decisions, state


# Small limits and windows so Hypothesis explores full windows, bursts and expiry quickly.
limits = st.builds(
    RateLimit,
    name=st.just("l"),
    limit=st.integers(1, 8),
    window_ms=st.integers(MIN_WINDOW_MS, 4_000),
)
forward_steps = st.one_of(st.just(0), st.integers(0, 60), st.integers(0, 2_500))
any_steps = st.one_of(forward_steps, st.integers(-3_000, 0))


@st.composite
def scenarios(draw, steps=any_steps, max_size=60):
    """A limit and a sequence of ``(now_ms, cost)`` requests against it."""
    limit = draw(limits)
    now_ms = T0 + draw(st.integers(0, 10_000))
    requests = []
    for _ in range(draw(st.integers(0, max_size))):
        now_ms += draw(steps)
        requests.append((now_ms, draw(st.integers(0, limit.limit + 1))))
    return limit, requests


@st.composite
def reached_states(draw):
    """A limit, a state reached by admitting requests under it, and the last time seen."""
    limit, requests = draw(scenarios())
    _, state = run(limit, requests)
    last = max((now for now, _ in requests), default=T0)
    return limit, state, last


@dataclass
class ReferenceLimiter:
    """The specification, without pruning: every admission is kept as ``(slot, cost)``."""

    limit: RateLimit
    admitted: list[tuple[int, int]]

    def decide(self, now_ms: int, cost: int) -> tuple[bool, int, int]:
        width, window = self.limit.bucket_ms, self.limit.window_ms
        newest = max((slot for slot, _ in self.admitted), default=None)
        effective = now_ms if newest is None else max(now_ms, newest * width)
        oldest = (effective - window + 1) // width
        counted = [(slot, c) for slot, c in self.admitted if slot >= oldest]
        remaining = max(self.limit.limit - sum(c for _, c in counted), 0)
        if cost > remaining or cost == 0:
            reset = max(s for s, _ in counted) if counted else None
            reset_at = now_ms if reset is None else (reset + 1) * width + window - 1
            return cost <= remaining, remaining, reset_at
        slot = effective // width
        self.admitted.append((slot, cost))
        return True, remaining - cost, (slot + 1) * width + window - 1


class TestRateLimit:
    def test_bucket_is_a_twentieth_of_the_window_rounded_up(self):
        assert 50 == RateLimit("r", 1, 1_000).bucket_ms
        assert 51 == RateLimit("r", 1, 1_001).bucket_ms
        assert 133_920_000 == RateLimit("r", 1, MAX_WINDOW_MS).bucket_ms

    @pytest.mark.parametrize(
        ("limit", "window_ms"),
        [(1, MIN_WINDOW_MS), (MAX_LIMIT, MAX_WINDOW_MS)],
        ids=["smallest", "largest"],
    )
    def test_bounds_are_inclusive(self, limit, window_ms):
        rate_limit = RateLimit("r", limit, window_ms)

        assert (limit, window_ms) == (rate_limit.limit, rate_limit.window_ms)

    @pytest.mark.parametrize(
        ("name", "limit", "window_ms", "field"),
        [
            ("", 1, 1_000, "name"),
            ("n" * 256, 1, 1_000, "name"),
            ("r", 0, 1_000, "limit"),
            ("r", -1, 1_000, "limit"),
            ("r", MAX_LIMIT + 1, 1_000, "limit"),
            ("r", True, 1_000, "limit"),
            ("r", 1.0, 1_000, "limit"),
            ("r", 1, MIN_WINDOW_MS - 1, "window_ms"),
            ("r", 1, MAX_WINDOW_MS + 1, "window_ms"),
            ("r", 1, 0, "window_ms"),
            ("r", 1, 1_000.0, "window_ms"),
        ],
        ids=[
            "empty-name",
            "long-name",
            "zero-limit",
            "negative-limit",
            "limit-past-2^53",
            "bool-limit",
            "float-limit",
            "window-under-1s",
            "window-over-31-days",
            "zero-window",
            "float-window",
        ],
    )
    def test_out_of_bounds_is_rejected(self, name, limit, window_ms, field):
        with pytest.raises(InvalidInput) as raised:
            RateLimit(name, limit, window_ms)

        assert field == raised.value.details["field"]


class TestCheck:
    def test_a_fresh_limit_admits_the_whole_limit_at_once(self):
        decisions, _ = run(PER_SECOND, [(T0, 1), (T0, 1), (T0, 1)])

        assert [True, True, False] == [d.allowed for d in decisions]
        assert [1, 0, 0] == [d.remaining for d in decisions]

    def test_a_used_unit_comes_back_at_reset_at_and_not_before(self):
        decisions, state = run(PER_SECOND, [(T0, 2)])
        reset_at = T0 + 50 + 1_000 - 1

        assert reset_at == decisions[0].reset_at_ms
        assert not check(state, PER_SECOND, now_ms=reset_at - 1).allowed
        # The old bucket is kept: a clock standing at the new bucket's start still counts it.
        expected = State(50, (T0 // 50, reset_at // 50), (2, 1))
        assert Decision(True, 1, reset_at + 1_000, expected) == check(
            state, PER_SECOND, now_ms=reset_at
        )

    def test_a_denied_request_returns_the_same_state_and_reports_the_current_window(self):
        _, state = run(PER_SECOND, [(T0, 1), (T0 + 10, 1)])

        decision = check(state, PER_SECOND, now_ms=T0 + 20, cost=1)

        assert Decision(False, 0, T0 + 50 + 999, state) == decision
        assert decision.state is state

    def test_a_cost_above_the_limit_is_denied_without_touching_the_state(self):
        decision = check(State(), PER_SECOND, now_ms=T0, cost=3)

        assert Decision(False, 2, T0, State()) == decision

    def test_a_zero_cost_peek_is_admitted_even_when_exhausted_and_changes_nothing(self):
        _, state = run(PER_SECOND, [(T0, 2)])

        decision = check(state, PER_SECOND, now_ms=T0 + 1, cost=0)

        assert Decision(True, 0, T0 + 1_049, state) == decision
        assert decision.state is state

    def test_a_peek_at_an_idle_limit_resets_now(self):
        assert Decision(True, 2, T0 + 7, State()) == peek(State(), PER_SECOND, T0 + 7)

    def test_buckets_that_left_the_window_are_pruned(self):
        _, state = run(PER_SECOND, [(T0, 1), (T0 + 500, 1), (T0 + 1_200, 1)])

        assert State(50, ((T0 + 500) // 50, (T0 + 1_200) // 50), (1, 1)) == state

    def test_a_limit_lowered_below_the_usage_reports_zero_and_still_allows_peeks(self):
        _, state = run(RateLimit("requests", 5, 1_000), [(T0, 5)])
        lowered = RateLimit("requests", 3, 1_000)

        assert Decision(False, 0, T0 + 1_049, state) == check(state, lowered, now_ms=T0 + 1)
        assert Decision(True, 0, T0 + 1_049, state) == peek(state, lowered, T0 + 1)

    def test_a_widened_window_counts_old_buckets_where_they_end(self):
        _, state = run(PER_SECOND, [(T0 + 1_960, 1)])  # bucket [T0+1950, T0+2000) of 50 ms
        wider = RateLimit("requests", 2, 2_000)  # buckets of 100 ms

        decision = check(state, wider, now_ms=T0 + 2_100)

        slot = (T0 + 1_999) // 100
        assert State(100, (slot, slot + 2), (1, 1)) == decision.state
        assert 0 == decision.remaining

    def test_a_narrowed_window_keeps_the_usage_until_the_old_bucket_ends(self):
        wide = RateLimit("requests", 3, 2_000)
        _, state = run(wide, [(T0, 1), (T0 + 30, 1)])

        decision = peek(state, PER_SECOND, T0 + 40)

        assert Decision(True, 0, T0 + 100 + 999, state) == decision

    def test_rescaled_buckets_falling_together_are_summed(self):
        state = State(50, (T0 // 50, T0 // 50 + 1), (1, 1))

        decision = check(state, RateLimit("requests", 5, 2_000), now_ms=T0 + 10)

        assert State(100, (T0 // 100,), (3,)) == decision.state

    def test_time_going_backwards_stands_still_at_the_newest_bucket(self):
        _, state = run(PER_SECOND, [(T0 + 5_000, 2)])

        assert Decision(False, 0, T0 + 6_049, state) == check(state, PER_SECOND, now_ms=T0)

    @pytest.mark.parametrize("cost", [-1, MAX_COST + 1], ids=["negative", "past-2^53"])
    def test_a_cost_out_of_bounds_is_rejected(self, cost):
        with pytest.raises(InvalidInput) as raised:
            check(State(), PER_SECOND, now_ms=T0, cost=cost)

        assert "cost" == raised.value.details["field"]

    @given(scenario=scenarios())
    def test_no_window_ever_admits_more_than_the_limit(self, scenario):
        """Stamps are the running maximum of admitted times: a backwards clock stands still."""
        limit, requests = scenario
        decisions, _ = run(limit, requests)
        admitted: list[tuple[int, int]] = []
        for (now_ms, cost), decision in zip(requests, decisions, strict=True):
            if decision.allowed and cost:
                stamp = max([now_ms] + [s for s, _ in admitted])
                admitted.append((stamp, cost))

        for end, _ in admitted:
            in_window = sum(c for s, c in admitted if end - limit.window_ms < s <= end)
            assert in_window <= limit.limit

    @given(scenario=scenarios(steps=forward_steps))
    def test_never_refuses_what_a_log_over_window_plus_bucket_would_admit(self, scenario):
        limit, requests = scenario
        span = limit.window_ms + limit.bucket_ms - 1
        state, admitted = State(), list[tuple[int, int]]()
        for now_ms, cost in requests:
            decision = check(state, limit, now_ms=now_ms, cost=cost)
            recent = sum(c for s, c in admitted if s > now_ms - span)
            if recent + cost <= limit.limit:
                assert decision.allowed
            if decision.allowed:
                admitted.append((now_ms, cost))
            state = decision.state

    @given(scenario=scenarios())
    def test_decisions_match_the_unpruned_reference(self, scenario):
        """The Redis port may prune lazily: decisions must not depend on pruning."""
        limit, requests = scenario
        reference = ReferenceLimiter(limit, [])
        decisions, _ = run(limit, requests)

        assert [reference.decide(now, cost) for now, cost in requests] == [
            (d.allowed, d.remaining, d.reset_at_ms) for d in decisions
        ]
        assert all(len(d.state.slots) <= SUBWINDOWS + 1 for d in decisions)

    @given(scenario=scenarios())
    def test_a_denied_request_consumes_nothing(self, scenario):
        """Dropping every denied request from the sequence changes no other decision."""
        limit, requests = scenario
        start = State()
        decisions, _ = run(limit, requests, start)
        kept = [(r, d) for r, d in zip(requests, decisions, strict=True) if d.allowed]

        replayed, _ = run(limit, [r for r, _ in kept])

        assert [d for _, d in kept] == replayed
        for decision, state in zip(decisions, [start, *[d.state for d in decisions]], strict=False):
            if not decision.allowed:
                assert decision.state is state

    @given(scenario=scenarios())
    def test_remaining_and_reset_at_agree_with_later_peeks(self, scenario):
        limit, requests = scenario
        decisions, _ = run(limit, requests)
        for (now_ms, _), decision in zip(requests, decisions, strict=True):
            after = decision.state
            assert decision.remaining == peek(after, limit, now_ms).remaining
            assert 0 <= decision.remaining <= limit.limit
            assert limit.limit == peek(after, limit, decision.reset_at_ms).remaining
            assert decision.reset_at_ms >= now_ms
            if decision.reset_at_ms > now_ms:
                assert limit.limit > peek(after, limit, decision.reset_at_ms - 1).remaining
            else:
                assert limit.limit == decision.remaining

    @given(reached=reached_states(), earlier=st.integers(0, 5_000), later=st.integers(0, 5_000))
    def test_remaining_never_grows_when_the_clock_goes_back(self, reached, earlier, later):
        limit, state, last = reached
        t1, t2 = sorted((last - earlier, last - earlier + later))

        assert peek(state, limit, t1).remaining <= peek(state, limit, t2).remaining

    @given(reached=reached_states(), back=st.integers(1, 10_000), cost=st.integers(0, 9))
    def test_a_backwards_clock_decides_as_at_the_newest_bucket(self, reached, back, cost):
        limit, state, _ = reached
        if state.slots:
            start = state.slots[-1] * limit.bucket_ms
            at_start = check(state, limit, now_ms=start, cost=cost)
            before = check(state, limit, now_ms=start - back, cost=cost)

            assert (at_start.allowed, at_start.remaining) == (before.allowed, before.remaining)
            assert at_start.state == before.state


THREE = (
    RateLimit("per-second", 3, 1_000),
    RateLimit("per-minute", 5, 60_000),
    RateLimit("per-day", 100, 86_400_000),
)


class TestCheckAll:
    def test_admits_when_every_limit_admits_and_returns_each_new_state(self):
        states = (State(),) * 3

        allowed, decisions, new_states = check_all(states, THREE, now_ms=T0, costs=(1, 2, 3))

        assert allowed
        assert [2, 3, 97] == [d.remaining for d in decisions]
        assert tuple(d.state for d in decisions) == new_states
        assert new_states == tuple(
            check(State(), limit, now_ms=T0, cost=cost).state
            for limit, cost in zip(THREE, (1, 2, 3), strict=True)
        )

    def test_one_refusal_consumes_nothing_anywhere_and_reports_current_state(self):
        _, _, states = check_all((State(),) * 3, THREE, now_ms=T0, costs=(1, 4, 1))

        allowed, decisions, new_states = check_all(states, THREE, now_ms=T0 + 1, costs=(1, 2, 1))

        assert not allowed
        assert all(new is old for new, old in zip(new_states, states, strict=True))
        assert [(True, 2), (False, 1), (True, 99)] == [(d.allowed, d.remaining) for d in decisions]
        assert [peek(s, limit, T0 + 1) for s, limit in zip(states, THREE, strict=True)] == [
            d._replace(allowed=True) for d in decisions
        ]

    def test_a_zero_cost_limit_in_a_refused_request_reports_its_peek(self):
        allowed, decisions, _ = check_all((State(),) * 2, THREE[:2], now_ms=T0, costs=(0, 6))

        assert not allowed
        assert [Decision(True, 3, T0, State()), Decision(False, 5, T0, State())] == list(decisions)

    def test_no_limits_admit(self):
        assert (True, (), ()) == check_all((), (), now_ms=T0, costs=())

    @pytest.mark.parametrize(
        ("states", "costs"),
        [((State(),) * 2, (1, 1, 1)), ((State(),) * 3, (1, 1))],
        ids=["states-short", "costs-short"],
    )
    def test_misaligned_sequences_are_rejected(self, states, costs):
        with pytest.raises(InvalidInput):
            check_all(states, THREE, now_ms=T0, costs=costs)

    def test_repeated_names_are_rejected(self):
        twice = (THREE[0], RateLimit("per-second", 9, 2_000))

        with pytest.raises(InvalidInput) as raised:
            check_all((State(),) * 2, twice, now_ms=T0, costs=(1, 1))

        assert "ratelimits" == raised.value.details["field"]

    @given(
        scenario=st.lists(
            st.tuples(st.integers(0, 1_500), st.integers(0, 4), st.integers(0, 6)),
            max_size=40,
        )
    )
    def test_all_or_nothing_matches_checking_each_limit_alone(self, scenario):
        limits = THREE[:2]
        states: tuple[State, ...] = (State(), State())
        now_ms = T0
        for step, cost_a, cost_b in scenario:
            now_ms += step
            alone = [
                check(state, limit, now_ms=now_ms, cost=cost)
                for state, limit, cost in zip(states, limits, (cost_a, cost_b), strict=True)
            ]

            allowed, decisions, new_states = check_all(
                states, limits, now_ms=now_ms, costs=(cost_a, cost_b)
            )

            assert all(d.allowed for d in alone) == allowed
            assert [d.allowed for d in alone] == [d.allowed for d in decisions]
            if allowed:
                assert tuple(alone) == decisions
                assert tuple(d.state for d in alone) == new_states
            else:
                assert states == new_states
                assert [
                    peek(s, lim, now_ms).remaining for s, lim in zip(states, limits, strict=True)
                ] == [d.remaining for d in decisions]
            states = new_states
