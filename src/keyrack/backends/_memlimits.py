"""The counters of the in-memory limit store: per-slot windows and compiled rate charges.

``MemoryLimitStore`` (``keyrack.backends.memory``) keeps one ``Counters`` per tenant. Each
rate limit's slot is a ``Window``: the ``State`` that ``keyrack.domain.ratelimit.check`` last
returned for it, a running total of its counts, and how long a request can be decided from
that total alone. A tuple of rate charges that comes back (verify sends the same one for a
key on every warm verify) is compiled once into rows (``Row``) bound to their windows, so the
store then decides it without looking anything up.

Windows are created once per slot and updated in place, never replaced, so compiled rows stay
bound to the live counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from keyrack.domain.limits import (
    BudgetState,
    CreditState,
    LeaseCharge,
    LimitStates,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit, State

__all__ = ["MAX_COMPILED", "Counters", "Row", "Window"]

MAX_COMPILED: Final = 4096
"""Compiled charge tuples kept per tenant; all are dropped (and recompiled on use) past this."""


class Window:
    """One rate limit's slot: its stored state, a running total, and when the shortcut holds.

    ``state`` is exactly the state ``keyrack.domain.ratelimit.check`` returned when the slot
    was last charged and ``total`` is ``sum(state.counts)``. The rest is derived once per
    stored state, for the ``limit`` that charged it:

    - ``until_ms``: while the clock reads below it, ``check`` with this limit counts every
      stored bucket (none has left the window) and charges the newest one, so the units in use
      are ``total`` and an admission adds the cost to the newest count. That is the case while
      ``max(now, newest start) < min(newest end, (first + 1) * width + window - 1)``, for the
      first and newest buckets. A stored state never holds a bucket that its newest bucket's
      start no longer counts, so a clock behind the newest bucket qualifies too. (An admission
      leaves the state in its limit's bucket width; a request under a limit of another width
      fails ``window.limit is limit`` and goes to ``check``, which rescales.)
    - ``reset_at_ms``: ``check``'s ``reset_at_ms`` for an admission in that span.
    """

    __slots__ = ("limit", "reset_at_ms", "state", "total", "until_ms")

    def __init__(self, state: State, limit: RateLimit) -> None:
        self.store(state, limit)

    def store(self, state: State, limit: RateLimit) -> None:
        """Keep ``state``, as ``check`` with ``limit`` admitted it (so in its bucket width)."""
        width = state.bucket_ms
        slots = state.slots
        newest_end = (slots[-1] + 1) * width
        span = limit.window_ms
        self.state = state
        self.total = sum(state.counts)
        self.limit = limit
        self.reset_at_ms = newest_end + span - 1
        self.until_ms = min(newest_end, (slots[0] + 1) * width + span - 1)


Row = tuple[Window, RateLimit, int, str, str, int]
"""One compiled rate charge: its window, limit, cost, slot, and the limit's name and value."""


class Counters:
    """One tenant's counters: rate windows, balances, budget counters and leases, by slot.

    Attributes:
        rates: The window of each rate-limit slot ever charged.
        credits: Each balance, as ``keyrack.domain.limits.apply`` reads and writes it.
        budgets: Each budget counter.
        leases: Per slot, live lease ids and their expiry (epoch ms).
        compiled: Compiled charge tuples by ``id()``, each kept with its tuple (which keeps the
            id from being reused while the entry lives).
    """

    __slots__ = ("budgets", "compiled", "credits", "leases", "rates")

    def __init__(self) -> None:
        self.rates: dict[str, Window] = {}
        self.credits: dict[str, CreditState] = {}
        self.budgets: dict[str, BudgetState] = {}
        self.leases: dict[str, dict[str, int]] = {}
        self.compiled: dict[int, tuple[tuple[RateCharge, ...], tuple[Row, ...]]] = {}

    def states(self, slots: Iterable[str]) -> LimitStates:
        """The counters as ``limits.apply`` reads them, with the rate states of ``slots``."""
        rates = self.rates
        return LimitStates(
            {slot: rates[slot].state for slot in slots if slot in rates},
            self.credits,
            self.budgets,
            self.leases,
        )

    def store_rate(self, slot: str, state: State, limit: RateLimit) -> None:
        """Write a rate limit's new state, in place when the slot has a window."""
        window = self.rates.get(slot)
        if window is None:
            self.rates[slot] = Window(state, limit)
        else:
            window.store(state, limit)

    def compile(self, charges: tuple[RateCharge, ...], now_ms: int) -> tuple[Row, ...] | None:
        """Bind ``charges`` to their windows, if every one can take the shortcut at ``now_ms``.

        Returns:
            The rows, remembered for the next request with this very tuple; ``None`` when a
            slot has no window yet, was charged under another limit, is leaving the shortcut's
            span, cannot admit its cost, or appears twice (each charge of a slot is decided on
            the stored state, which the shortcut cannot do).
        """
        windows = self.rates
        rows: list[Row] = []
        bound: list[Window] = []
        for slot, limit, cost in charges:
            window = windows.get(slot)
            allowed = limit.limit
            if (
                window is None
                or window.limit is not limit
                or now_ms >= window.until_ms
                or not 0 < cost <= allowed - window.total
                or window in bound
            ):
                return None
            bound.append(window)
            rows.append((window, limit, cost, slot, limit.name, allowed))
        compiled = self.compiled
        if len(compiled) >= MAX_COMPILED:
            compiled.clear()
        compiled_rows = tuple(rows)
        compiled[id(charges)] = (charges, compiled_rows)
        return compiled_rows

    def take_lease(self, lease: LeaseCharge, now_ms: int) -> None:
        """Record an admitted lease until its expiry, dropping the slot's expired ones."""
        live = self.leases.setdefault(lease.slot, {})
        for expired in [lease_id for lease_id, expires in live.items() if expires <= now_ms]:
            del live[expired]
        live[lease.lease_id] = now_ms + lease.ttl_ms
