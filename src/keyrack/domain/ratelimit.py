"""Named rate limits: a sliding window over sub-window counters that never over-admits.

The contract (DESIGN.md §2, §4, §11) asks for limits that are *exact*: within **any** span of
``window_ms`` milliseconds the admitted costs sum to at most ``limit``, a denied request consumes
nothing, and several limits are all-or-nothing. The algorithm is chosen for that guarantee:

- **GCRA / token bucket** keeps one integer (the theoretical arrival time), but with a burst of
  ``limit`` it admits up to about ``2 * limit`` in one window: ``limit`` at once, then one more
  every ``window_ms / limit`` while the first burst is still inside the window. Shrinking the
  burst to stay exact (no burst at all) would refuse two requests sent together. Rejected.
- **The weighted sliding-window counter** (Cloudflare's two counters, Upstash's default) keeps two
  integers but *estimates* the previous window's share; traffic bunched at the end of a window
  gets through twice. Approximate, so rejected.
- **A sliding log** is exact and admits everything the contract allows, but stores one entry per
  admitted request: unbounded for limits up to 2**53 - 1. Rejected.
- **Chosen: a conservative sliding window over sub-windows.** Time is cut into buckets of
  ``bucket_ms = ceil(window_ms / SUBWINDOWS)`` aligned on the epoch; each bucket counts the cost
  it admitted. A request at ``now`` counts every bucket that overlaps ``(now - window_ms, now]``
  *whole*, so the count is an upper bound of the true sliding-window usage and the guarantee is
  exact (``tests/unit/domain/test_ratelimit.py`` checks it against a brute-force log).

Guarantees (the tests state them as Hypothesis properties):

- **Safety, exact**: in every span ``[t, t + window_ms)`` the admitted costs sum to at most
  ``limit``, for any sequence of ``(now_ms, cost)``.
- **Bounded caution**: a request is never refused when the costs admitted in the last
  ``window_ms + bucket_ms - 1`` milliseconds leave room for it. A used unit comes back at most
  ``bucket_ms`` (1/20 of the window) after a sliding log would give it back. A client pacing
  one request every ``(window_ms + bucket_ms) / limit`` is never refused; one pacing at exactly
  ``window_ms / limit`` loses about one request in ``min(limit, SUBWINDOWS) + 1``.
- **Bursts**: a fresh limit admits the whole ``limit`` at once (unlike GCRA without burst).
- **State**: at most ``SUBWINDOWS + 1`` ``(slot, count)`` pairs, plain integers that map to a
  Redis hash ``{slot: count}``; with inputs in bounds every intermediate stays below 2**53, so a
  Lua port (doubles) computes the same decisions.
- **Clock skew**: the state's newest bucket is a floor on time; a clock that goes backwards is
  treated as standing still at that bucket's start, so it never frees anything. ``remaining``
  for a given state never decreases as ``now_ms`` grows.

A state written under another bucket width (the window was changed) is read conservatively:
each old bucket is counted in the new bucket that holds its last millisecond.

For the Redis port: ``check`` is the whole transition. An admission keeps every bucket a later
call could count (it prunes only below the window of the new bucket's start), so decisions do
not depend on when a port prunes; ``test_decisions_match_the_unpruned_reference`` holds that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from keyrack.errors import InvalidInput

__all__ = [
    "MAX_COST",
    "MAX_LIMIT",
    "MAX_WINDOW_MS",
    "MIN_WINDOW_MS",
    "SUBWINDOWS",
    "Decision",
    "RateLimit",
    "State",
    "check",
    "check_all",
]

SUBWINDOWS: Final = 20
"""Buckets per window: precision (a unit returns at most ``window/20`` late) against state size."""

MAX_LIMIT: Final = 2**53 - 1
"""Largest limit: the largest integer a JSON number and a Lua double hold exactly."""

MAX_COST: Final = 2**53 - 1
"""Largest request cost (DESIGN.md §11 "Input bounds")."""

MIN_WINDOW_MS: Final = 1_000
MAX_WINDOW_MS: Final = 31 * 86_400_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One named limit: at most ``limit`` cost units in any ``window_ms`` milliseconds.

    Attributes:
        name: The limit's name on the key or identity (``"requests"``, ``"tokens"``).
        limit: Cost units allowed per window, 1 … 2**53 - 1.
        window_ms: Window length in milliseconds, 1 s … 31 days.
        bucket_ms: Width of one counting bucket, derived: ``ceil(window_ms / SUBWINDOWS)``.
    """

    name: str
    limit: int
    window_ms: int
    bucket_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 255:
            raise InvalidInput("rate limit name must be 1-255 characters", field="name")
        if type(self.limit) is not int or not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be an integer 1 … {MAX_LIMIT}", field="limit")
        if type(self.window_ms) is not int or not MIN_WINDOW_MS <= self.window_ms <= MAX_WINDOW_MS:
            raise InvalidInput("window must be 1 second … 31 days", field="window_ms")
        object.__setattr__(self, "bucket_ms", -(-self.window_ms // SUBWINDOWS))


class State(NamedTuple):
    """What one limit has admitted recently: cost per bucket.

    ``State()`` is the state of a limit that has admitted nothing. Serialized, it is a Redis hash
    ``{"w": bucket_ms, "<slot>": count, …}``. A named tuple rather than a frozen dataclass, like
    ``Decision``: a new one is built on every admitted request, at a third of the cost.

    Attributes:
        bucket_ms: The bucket width the slots are numbered in (0 while empty).
        slots: Bucket numbers (``now_ms // bucket_ms``), strictly increasing.
        counts: Cost admitted in each bucket of ``slots``, each positive.
    """

    bucket_ms: int = 0
    slots: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()


class Decision(NamedTuple):
    """The answer for one limit.

    A named tuple rather than a frozen dataclass: one is built per limit on every verify, and a
    tuple costs a fraction as much to construct while staying just as immutable.

    Attributes:
        allowed: Whether this limit admits the request's cost.
        remaining: Units left now: after this request when the request is admitted, before it
            (nothing was consumed) when it is denied.
        reset_at_ms: When every used unit has come back (``remaining == limit``) if nothing else
            is admitted; ``now_ms`` when nothing is in use.
        state: The state to persist: new when admitted with a positive cost, otherwise the very
            object passed in (nothing to write).
    """

    allowed: bool
    remaining: int
    reset_at_ms: int
    state: State


# The hot path builds its tuples with ``tuple.__new__`` directly: the generated ``__new__`` of a
# named tuple is a Python-level function and costs three times as much.
_new: Final = tuple.__new__


def _rescaled(state: State, bucket_ms: int) -> State:
    """Renumber ``state`` in buckets of ``bucket_ms``, each old bucket landing where it ends."""
    old = state.bucket_ms
    slots: list[int] = []
    counts: list[int] = []
    for slot, count in zip(state.slots, state.counts, strict=True):
        new_slot = ((slot + 1) * old - 1) // bucket_ms
        if slots and slots[-1] == new_slot:
            counts[-1] += count
        else:
            slots.append(new_slot)
            counts.append(count)
    return State(bucket_ms, tuple(slots), tuple(counts))


def check(state: State, limit: RateLimit, *, now_ms: int, cost: int = 1) -> Decision:
    """Decide whether ``limit`` admits ``cost`` units at ``now_ms``.

    Args:
        state: The limit's state from the previous admitted call, or ``State()``.
        limit: The limit to apply.
        now_ms: Epoch milliseconds from the injected clock; never read here.
        cost: Units this request uses, 0 … 2**53 - 1; 0 is a peek and is always admitted.

    Returns:
        The decision, whose ``state`` is what to persist (the same object when nothing changes).

    Raises:
        InvalidInput: ``cost`` is negative or too large.
    """
    if cost < 0 or cost > MAX_COST:
        raise InvalidInput(f"cost must be an integer 0 … {MAX_COST}", field="cost")
    width = limit.bucket_ms
    window = limit.window_ms
    view = state
    slots = state.slots
    if slots:
        if state.bucket_ms != width:
            view = _rescaled(state, width)
            slots = view.slots
        newest = slots[-1]
        # A clock behind the newest bucket stands still at that bucket's start: it frees nothing.
        floor = newest * width
        effective = now_ms if now_ms >= floor else floor
        oldest = (effective - window + 1) // width
        if slots[0] >= oldest:  # the common case: nothing has left the window
            first = 0
            used = sum(view.counts)
        else:
            first = bisect_left(slots, oldest)
            used = sum(view.counts[first:])
    else:
        newest = effective = now_ms
        first = used = 0
    # Below 0 only when the limit was lowered under what is already used.
    remaining = max(limit.limit - used, 0)
    if cost > remaining or cost == 0:
        # Nothing is consumed: report the current window (``newest`` is counted when anything is).
        reset_at = (newest + 1) * width + window - 1 if used else now_ms
        return _new(Decision, (cost <= remaining, remaining, reset_at, state))
    slot = effective // width
    counts = view.counts
    # Drop only the buckets no later call can count: time never goes below this bucket's start,
    # so decisions do not depend on when (or whether) a port prunes.
    cut = (slot * width - window + 1) // width
    if first and slots[0] < cut:
        keep = bisect_left(slots, cut)
        slots = slots[keep:]
        counts = counts[keep:]
    if slots and slots[-1] == slot:
        new_state = _new(State, (width, slots, (*counts[:-1], counts[-1] + cost)))
    else:
        new_state = _new(State, (width, (*slots, slot), (*counts, cost)))
    reset_at = (slot + 1) * width + window - 1
    return _new(Decision, (True, remaining - cost, reset_at, new_state))


def check_all(
    states: Sequence[State],
    limits: Sequence[RateLimit],
    *,
    now_ms: int,
    costs: Sequence[int],
) -> tuple[bool, tuple[Decision, ...], tuple[State, ...]]:
    """Apply several limits to one request, all or nothing.

    Args:
        states: One state per limit, in the order of ``limits``.
        limits: The limits the request touches; names must be distinct (one state each).
        now_ms: Epoch milliseconds from the injected clock.
        costs: Units charged to each limit, in the order of ``limits``.

    Returns:
        ``(allowed, decisions, new_states)``. When every limit admits, ``new_states`` holds each
        limit's new state. When any limit denies, nothing is consumed: ``new_states`` are the
        states passed in, and every decision reports the current ``remaining`` and
        ``reset_at_ms`` (each decision's ``allowed`` still tells which limits refused).

    Raises:
        InvalidInput: The three sequences differ in length, a name repeats, or a cost is out
            of bounds.
    """
    count = len(limits)
    if len(states) != count or len(costs) != count:
        raise InvalidInput("states, limits and costs must line up one to one")
    if count > 1 and len({limit.name for limit in limits}) != count:
        raise InvalidInput("rate limit names must be distinct", field="ratelimits")
    decisions = [check(states[i], limits[i], now_ms=now_ms, cost=costs[i]) for i in range(count)]
    for decision in decisions:
        if not decision.allowed:
            break
    else:
        return True, tuple(decisions), tuple([decision.state for decision in decisions])
    for i, decision in enumerate(decisions):
        if decision.allowed and costs[i]:
            decisions[i] = check(states[i], limits[i], now_ms=now_ms, cost=0)
    return False, tuple(decisions), tuple(states)
