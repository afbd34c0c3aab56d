"""The verify hot path (DESIGN.md §4): parse, digest, cached lookup, ordered checks.

A warm verify does no database I/O: one HMAC, one dict lookup, the ordered checks (state →
policy → permissions → tokens → limits) and a dict write for the write-behind
``last_used_at``. A cold verify is one database query that loads every field the checks need
for the presented key's digest under every pepper version (a second one for a key with roles).
Limits are one call to the ``LimitStore`` (one Redis round trip with Redis), made only for keys
that carry limits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from keyrack.domain import budget as budgets
from keyrack.domain import credits as creditlib
from keyrack.domain import keys as keyformat
from keyrack.domain import leases, permission_query
from keyrack.domain.budget import BudgetPeriod
from keyrack.domain.credits import Refill
from keyrack.domain.hashing import Peppers
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    CreditCharge,
    LeaseCharge,
    LimitPlan,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.models import KeyRecord
from keyrack.domain.policy import RequestFacts, check_policy, check_tokens
from keyrack.domain.verification import (
    NO_FACTS,
    NOT_FOUND,
    Outcome,
    VerifyFacts,
    VerifyResult,
    check_state,
)
from keyrack.errors import BackendUnavailable, InvalidInput
from keyrack.services.ports import Cache, Clock, Entropy, LimitStore, Rehash, UnitOfWorkFactory
from keyrack.services.writebehind import WriteBehind

logger = logging.getLogger(__name__)

_DAY_MS: Final = 86_400_000
# Named tuples built on every limited verify skip their Python-level ``__new__``.
_new: Final = tuple.__new__
_MAX_QUERIES: Final = 4096


class _Calendar:
    """Refill instants and budget period starts, recomputed only when the UTC day changes."""

    __slots__ = ("_day", "_periods", "_refills")

    def __init__(self) -> None:
        self._day = -1
        self._refills: dict[Refill, int] = {}
        self._periods: dict[BudgetPeriod, int] = {}

    def _on(self, now_ms: int) -> datetime:
        day = now_ms // _DAY_MS
        if day != self._day:
            self._day = day
            self._refills.clear()
            self._periods.clear()
        return datetime.fromtimestamp(now_ms / 1000, UTC)

    def refill_boundary(self, refill: Refill, now_ms: int) -> int:
        """The latest refill instant at or before ``now_ms`` (``NEVER`` for none)."""
        day = now_ms // _DAY_MS
        if day == self._day and (cached := self._refills.get(refill)) is not None:
            return cached
        boundary = creditlib.refill_boundary_ms(refill, self._on(now_ms))
        value = NEVER if boundary is None else boundary
        self._refills[refill] = value
        return value

    def period_start(self, period: BudgetPeriod, now_ms: int) -> int:
        """The start of the current budget period (``NEVER`` for ``never``)."""
        day = now_ms // _DAY_MS
        if day == self._day and (cached := self._periods.get(period)) is not None:
            return cached
        start = budgets.period_start_ms(period, self._on(now_ms))
        value = NEVER if start is None else start
        self._periods[period] = value
        return value


class VerifyService:
    """Answers whether a presented API key may be used, and with what identity and rights."""

    __slots__ = (
        "_cache",
        "_calendar",
        "_clock",
        "_entropy",
        "_limits",
        "_load_grants",
        "_negative_ttl",
        "_peppers",
        "_positive_ttl",
        "_queries",
        "_request_cache_size",
        "_requests",
        "_stale_if_error",
        "_uow",
        "_writes",
    )

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        cache: Cache[KeyRecord],
        peppers: Peppers,
        clock: Clock,
        writes: WriteBehind,
        limits: LimitStore,
        entropy: Entropy,
        positive_ttl: float = 30.0,
        negative_ttl: float = 2.0,
        stale_if_error: float = 300.0,
        request_cache_size: int = 65_536,
    ) -> None:
        self._uow = uow
        self._cache = cache
        self._peppers = peppers
        self._clock = clock
        self._writes = writes
        self._limits = limits
        self._entropy = entropy
        self._positive_ttl = positive_ttl
        self._negative_ttl = negative_ttl
        self._stale_if_error = stale_if_error
        self._calendar = _Calendar()
        self._queries: dict[str, permission_query.Node] = {}
        self._requests: dict[str, tuple[tuple[KeyRecord, int, int, int], LimitRequest]] = {}
        self._request_cache_size = request_cache_size

    def parse_query(self, text: str) -> permission_query.Node:
        """Parse a permission query, remembering recent ones (gateways repeat a few queries).

        Raises:
            PermissionQuerySyntax: The query is malformed (with its ``position``).
        """
        query = self._queries.get(text)
        if query is None:
            query = permission_query.parse(text)
            if len(self._queries) >= _MAX_QUERIES:
                self._queries.clear()
            self._queries[text] = query
        return query

    async def verify(
        self,
        presented: str,
        *,
        tenant_scope: str | None = None,
        facts: VerifyFacts = NO_FACTS,
    ) -> VerifyResult:
        """Verify ``presented`` for a caller scoped to ``tenant_scope`` (``None``: platform).

        Args:
            presented: The key exactly as the end user sent it (any string).
            tenant_scope: The caller's tenant; another tenant's key answers ``NOT_FOUND``.
            facts: What the caller tells about the request (permissions query, IP, cost …).

        Returns:
            The outcome and, when the key exists for this caller, its record, the policy
            reason and the limits' state.

        Raises:
            PermissionQuerySyntax: ``facts.permissions`` is malformed (whatever the key).
            InvalidInput: A cost, spend or token count is out of bounds.
            BackendUnavailable: The key is not cached and the database cannot be reached.
        """
        query = None if facts.permissions is None else self.parse_query(facts.permissions)
        if facts is not NO_FACTS:
            _check_amounts(facts)
        if not keyformat.is_well_formed(presented) or keyformat.is_root_key(presented):
            return NOT_FOUND
        digest = self._peppers.digest(presented)
        now = self._clock.now()
        entry = self._cache.get(digest)
        if entry is not None and entry[1] > now:
            record = entry[0]
        else:
            record = await self._load(presented, digest, now, stale=entry)
        if record is None or (tenant_scope is not None and record.tenant_id != tenant_scope):
            return NOT_FOUND
        outcome = check_state(record, now=now)
        reason = None
        if outcome is Outcome.VALID and (record.policy is not None or query is not None):
            outcome, reason = self._check_request(record, facts, query)
        plan = record.plan
        if plan is None:
            if outcome is Outcome.VALID:
                self._writes.touch(record.tenant_id, record.key_id, now)
            return VerifyResult(outcome, record, reason)
        dry_run = outcome is not Outcome.VALID
        request = self._limit_request(record, plan, facts, now, dry_run=dry_run)
        answer = await self._limits.apply(request, dry_run=dry_run)
        if answer.new_credits is not None or answer.new_budget is not None:
            self._writes.counters(request, answer)
        if not dry_run:
            outcome = answer.outcome
            if outcome is Outcome.VALID:
                self._writes.touch(record.tenant_id, record.key_id, now)
        return VerifyResult(outcome, record, reason, answer)

    @staticmethod
    def _check_request(
        record: KeyRecord, facts: VerifyFacts, query: permission_query.Node | None
    ) -> tuple[Outcome, str | None]:
        """Policy, then permissions, then tokens (DESIGN.md §4 order)."""
        policy = record.policy
        request = None
        if policy is not None:
            request = RequestFacts(facts.ip, facts.origin, facts.endpoint, facts.tls, facts.tokens)
            outcome, reason = check_policy(policy, request)
            if outcome is not Outcome.VALID:
                return outcome, reason
        if query is not None and not query.is_satisfied_by(record.granted):
            return Outcome.INSUFFICIENT_PERMISSIONS, None
        if policy is not None and request is not None:
            outcome, reason = check_tokens(policy, request)
            if outcome is not Outcome.VALID:
                return outcome, reason
        return Outcome.VALID, None

    def _limit_request(
        self, record: KeyRecord, plan: LimitPlan, facts: VerifyFacts, now: float, *, dry_run: bool
    ) -> LimitRequest:
        """Every limit of the key as one request to the limit store (no lease on a dry run).

        Without per-limit overrides a key's charges change only with the UTC day (refill and
        period boundaries), the cost and the spend, so the last request is reused while those
        hold: a warm verify builds no charge (only the lease, when the key has one, is new), and
        the memory store recognises the very rate charges it compiled. The last request of at
        most ``request_cache_size`` keys is kept; past that, all are dropped and rebuilt on use.
        """
        now_ms = int(now * 1000)
        key = (record, now_ms // _DAY_MS, facts.cost, facts.spend)
        cached = self._requests.get(record.key_id)
        if cached is not None and cached[0] == key and not facts.ratelimits:
            request = cached[1]
        else:
            request = self._request(record, plan, facts, now_ms)
            if not facts.ratelimits:
                if len(self._requests) >= self._request_cache_size:
                    self._requests.clear()
                self._requests[record.key_id] = (key, request)
        if plan.lease_slot is None or dry_run:
            return request
        lease = LeaseCharge(
            plan.lease_slot,
            plan.max_concurrency,
            plan.lease_ttl_ms,
            leases.new_lease_id(
                record.tenant_id, record.key_id, self._entropy(leases.ENTROPY_BYTES)
            ),
        )
        return _new(LimitRequest, (*request[:4], lease))

    def _request(
        self, record: KeyRecord, plan: LimitPlan, facts: VerifyFacts, now_ms: int
    ) -> LimitRequest:
        """The charges of one verify at ``now_ms``, without a lease."""
        cost = facts.cost
        if cost == 1 and not facts.ratelimits:
            rates = plan.unit_rates
        else:
            overrides = dict(facts.ratelimits)
            rates = tuple(
                RateCharge(slot, limit, overrides.get(limit.name, cost))
                for slot, limit in plan.rates
            )
        credits = None
        if plan.credits_slot is not None and plan.credits is not None:
            balance = plan.credits
            credits = _new(
                CreditCharge,
                (
                    plan.credits_slot,
                    balance.remaining or 0,
                    balance.refilled_at_ms,
                    plan.credits_version,
                    balance.refill.amount,
                    self._calendar.refill_boundary(balance.refill, now_ms),
                    cost,
                ),
            )
        budget = None
        if plan.budget_slot is not None and plan.budget is not None:
            cap = plan.budget
            budget = _new(
                BudgetCharge,
                (
                    plan.budget_slot,
                    cap.limit,
                    cap.soft_limit,
                    self._calendar.period_start(cap.period, now_ms),
                    cap.spent,
                    cap.period_start_ms,
                    facts.spend,
                ),
            )
        return _new(LimitRequest, (record.tenant_id, rates, credits, budget, None))

    async def _load(
        self,
        presented: str,
        digest: bytes,
        now: float,
        *,
        stale: tuple[KeyRecord | None, float] | None,
    ) -> KeyRecord | None:
        digests = self._peppers.all_digests(presented)
        try:
            async with self._uow() as uow:
                record = await uow.secrets.find(list(digests))
        except BackendUnavailable:
            if stale is not None and now < stale[1] + self._stale_if_error:
                logger.warning("verify.stale_cache_used")
                return stale[0]
            raise
        if record is None:
            self._cache.put(digest, None, owner=None, expires_at=now + self._negative_ttl)
            return None
        keyformat.remember_prefix(presented)
        if record.pepper_version != self._peppers.current_version:
            self._writes.rehash(
                Rehash(
                    tenant_id=record.tenant_id,
                    secret_id=record.secret_id,
                    digest=digest,
                    pepper_version=self._peppers.current_version,
                )
            )
        self._cache.put(digest, record, owner=record.key_id, expires_at=now + self._positive_ttl)
        return record


def _check_amounts(facts: VerifyFacts) -> None:
    """Refuse out-of-bounds integers the schema layer would refuse too (library callers)."""
    for name, value in (("cost", facts.cost), ("spend", facts.spend)):
        if type(value) is not int or not 0 <= value <= creditlib.MAX_AMOUNT:
            raise InvalidInput(f"{name} must be an integer 0 … {creditlib.MAX_AMOUNT}", field=name)
    tokens = facts.tokens
    if tokens is not None and (type(tokens) is not int or not 0 <= tokens <= creditlib.MAX_AMOUNT):
        raise InvalidInput(f"tokens must be an integer 0 … {creditlib.MAX_AMOUNT}", field="tokens")
    for _name, value in facts.ratelimits:
        if type(value) is not int or not 0 <= value <= creditlib.MAX_AMOUNT:
            raise InvalidInput(
                "a rate limit cost must be an integer 0 … 2**53 - 1", field="ratelimits"
            )
