"""The shared limit store: ``keyrack.domain.limits.apply`` as one Lua script in Redis.

Every replica charges the same counters, so limits are exact across replicas (DESIGN.md §4).
Each call is **one round trip**: one ``EVALSHA`` of one script that reads every counter the
request touches, decides with the domain's rules, and writes only when everything admits. A
script runs atomically, so concurrent verifies never interleave. Only when Redis does not know
the script yet (after a restart or ``SCRIPT FLUSH``) does a call take a second round trip, an
``EVAL`` that also caches it.

**Keys** (DESIGN.md §1: Redis Cluster works): ``keyrack:{<tenant_id>}:<kind>:<slot>``. The
``{tenant_id}`` hash tag puts every key of one verify in one cluster slot. Kinds:

- ``rl``: a rate limit's state, a hash ``{"w": bucket_ms, "<bucket>": count, …}``
  (``keyrack.domain.ratelimit.State``); expires when its newest bucket leaves the window
  (at most ``window + bucket`` after the last admission);
- ``cr``: a balance, a hash ``{remaining, refilled_at, version}``;
- ``bg``: a budget counter, a hash ``{spent, period_start}``;
- ``ls``: live leases, a sorted set ``lease_id → expiry (epoch ms)``; expires with its
  longest-lived lease.

Credits and budgets expire after 40 idle days: each charge carries the database snapshot, so
a counter that expired is seeded again (``keyrack.domain.limits``).

**Arguments.** Every number of a call travels in ``ARGV[1]`` as little-endian int64s
(``struct.pack("<…q")``, unpacked by Redis' ``struct`` library in C): encoding and parsing
dozens of separate decimal arguments cost more than the rest of the call. ``ARGV[2]`` is the
lease id, when there is one. The numbers start with the operation (1 apply, 2 release, 3 set
credits, 4 adjust credits) and ``now_ms`` where needed; ``-1`` makes the script read Redis'
own clock (``TIME``), which every replica shares (tests pass an explicit one). For
``apply``: ``KEYS`` = the rate keys in request order, then the ``cr``, ``bg`` and ``ls`` keys
that the request charges; the numbers = ``1, now_ms, dry_run, n_rates, has_credits,
has_budget, has_lease``, then per rate ``limit, window_ms, bucket_ms, cost``, the credit
charge ``seed_remaining, seed_refilled_at_ms, seed_version, refill_amount, boundary_ms,
cost``, the budget charge ``limit, period_start_ms, seed_spent, seed_period_start_ms,
spend``, the lease ``max_concurrency, ttl_ms``, and last the idle TTL of credits and budgets.

The reply is a flat array of integers: the outcome code, ``remaining, reset_at_ms`` per rate,
then the balance ``remaining, refilled_at_ms, version, written`` and the budget
``spent, period_start_ms, written`` when charged, then, when admitted, each charged rate's new
state ``bucket_ms, n, slot…, count…`` (buckets in hash order; sorted here). Everything is an
integer below 2**53, which a Lua double holds exactly; the script divides with an exact floor
division and formats with ``%d``, never with Lua's default ``%.14g``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from struct import pack
from typing import Final, Self, cast

from keyrack.domain.credits import MAX_AMOUNT
from keyrack.domain.limits import (
    BudgetState,
    CreditCharge,
    CreditState,
    LimitAnswer,
    LimitRequest,
    RateReport,
)
from keyrack.domain.ratelimit import MAX_COST, State
from keyrack.domain.verification import Outcome
from keyrack.errors import BackendUnavailable, InvalidInput, MissingDependency

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependency(package="redis", extra="redis") from exc

__all__ = ["CREDIT_IDLE_TTL_MS", "RedisLimitStore", "key_name"]

CREDIT_IDLE_TTL_MS: Final = 40 * 86_400_000
"""Credits and budget counters expire after this long untouched (re-seeded from the database)."""

_OUTCOMES: Final = (
    Outcome.VALID,
    Outcome.RATE_LIMITED,
    Outcome.CONCURRENCY_LIMITED,
    Outcome.USAGE_EXCEEDED,
    Outcome.BUDGET_EXCEEDED,
)

# Errors that mean "Redis cannot be reached or cannot serve now", never a bug of ours: they
# become BackendUnavailable, which the failure policy (services.limits) acts on.
_UNAVAILABLE: Final = (
    redis_errors.ConnectionError,  # also BusyLoadingError, AuthenticationError, MaxConnections
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a failover left us on a replica
    redis_errors.OutOfMemoryError,
    redis_errors.ClusterDownError,  # also MasterDownError
    redis_errors.TryAgainError,
    OSError,  # a socket error redis-py did not wrap (builtin TimeoutError included)
)

_SCRIPT: Final = r"""
local MAX = 9007199254740991

-- Floor division, exact for integers below 2^53: a double quotient may round up to the
-- next integer when the divisor is large, so the remainder corrects it.
local function idiv(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
  elseif r >= b then
    q = q + 1
  end
  return q
end

-- Integers as decimal strings: Lua's tostring would print 1e+15 style above 14 digits.
local function fmt(x)
  return string.format('%d', x)
end

-- ARGV[1] holds every number as a little-endian int64, unpacked in C: one argument to
-- encode and decode instead of dozens. ARGV[2] is the lease id, when there is one.
local A = {struct.unpack('<' .. string.rep('i8', #ARGV[1] / 8), ARGV[1])}
A[#A] = nil  -- unpack's last result is the position after the data

local function clock(arg)
  if arg >= 0 then
    return arg
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + idiv(tonumber(t[2]), 1000)
end

-- A rate state as stored: the bucket width and the buckets in hash order (not sorted: no
-- step below needs an order, and the Python side sorts the new state it is sent).
local function read_rate(key)
  local flat = redis.call('HGETALL', key)
  local width = 0
  local slots, counts = {}, {}
  local n = 0
  for i = 1, #flat, 2 do
    if flat[i] == 'w' then
      width = tonumber(flat[i + 1])
    else
      n = n + 1
      slots[n] = tonumber(flat[i])
      counts[n] = tonumber(flat[i + 1])
    end
  end
  return {width = width, slots = slots, counts = counts}
end

-- keyrack.domain.ratelimit.check over unordered buckets. Pruning keeps the domain's rule:
-- the domain prunes below ``cut`` only when some bucket is below ``oldest``, but ``cut`` is
-- never above ``oldest``, so "every bucket below cut" is the same set.
local function check(st, r, now, cost)
  local width, window = r.width, r.window
  local slots, counts = st.slots, st.counts
  local n = #slots
  local rescaled = false
  local newest, effective, used
  if n > 0 then
    if st.width ~= width then
      -- each old bucket lands in the new bucket that holds its last millisecond
      local index, ns, nc = {}, {}, {}
      for i = 1, n do
        local s = idiv((slots[i] + 1) * st.width - 1, width)
        local j = index[s]
        if j then
          nc[j] = nc[j] + counts[i]
        else
          j = #ns + 1
          ns[j], nc[j], index[s] = s, counts[i], j
        end
      end
      slots, counts, n, rescaled = ns, nc, #ns, true
    end
    newest = slots[1]
    for i = 2, n do
      if slots[i] > newest then newest = slots[i] end
    end
    local floor = newest * width
    if now >= floor then effective = now else effective = floor end
    local oldest = idiv(effective - window + 1, width)
    used = 0
    for i = 1, n do
      if slots[i] >= oldest then used = used + counts[i] end
    end
  else
    newest, effective, used = now, now, 0
  end
  local remaining = r.limit - used
  if remaining < 0 then remaining = 0 end
  if cost > remaining or cost == 0 then
    local reset_at = now
    if used > 0 then reset_at = (newest + 1) * width + window - 1 end
    return {allowed = cost <= remaining, remaining = remaining, reset_at = reset_at}
  end
  local slot = idiv(effective, width)
  local cut = idiv(slot * width - window + 1, width)
  local pruned, ns, nc = {}, {}, {}
  local at = nil
  for i = 1, n do
    local s = slots[i]
    if s < cut then
      pruned[#pruned + 1] = fmt(s)
    else
      ns[#ns + 1] = s
      nc[#nc + 1] = counts[i]
      if s == slot then at = #ns end
    end
  end
  if at then
    nc[at] = nc[at] + cost
  else
    at = #ns + 1
    ns[at], nc[at] = slot, cost
  end
  return {
    allowed = true,
    remaining = remaining - cost,
    reset_at = (slot + 1) * width + window - 1,
    slots = ns,
    counts = nc,
    at = at,  -- the bucket this request was counted in
    rescaled = rescaled,
    pruned = pruned,
    -- a new newest bucket moves the expiry; within the same bucket it stays where it is
    moved = n == 0 or rescaled or slot ~= newest,
  }
end

-- keyrack.domain.limits.current_credits; also whether it differs from what is stored.
local function current_credits(key, a)
  local s = redis.call('HMGET', key, 'remaining', 'refilled_at', 'version')
  local seed_rem, seed_at, seed_ver = A[a], A[a + 1], A[a + 2]
  local amount, boundary = A[a + 3], A[a + 4]
  local rem, at, ver
  local exists = s[1] ~= false
  if exists then
    rem, at, ver = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
  end
  if not exists or ver < seed_ver then
    rem, at, ver = seed_rem, seed_at, seed_ver
  end
  if boundary ~= -1 and at < boundary then
    rem, at = amount, boundary
  end
  local changed = not exists or rem ~= tonumber(s[1]) or at ~= tonumber(s[2])
    or ver ~= tonumber(s[3])
  return rem, at, ver, changed
end

local function write_credits(key, rem, at, ver)
  redis.call('HSET', key, 'remaining', fmt(rem), 'refilled_at', fmt(at), 'version', fmt(ver))
  redis.call('PEXPIRE', key, fmt(A[#A]))
end

local op = A[1]

if op == 1 then  -- apply
  local now = clock(A[2])
  local dry = A[3] == 1
  local nrates = A[4]
  local k, a = 1, 8
  local rates, decisions = {}, {}
  local outcome = 0
  for i = 1, nrates do
    local r = {
      key = KEYS[k],
      limit = A[a],
      window = A[a + 1],
      width = A[a + 2],
      cost = A[a + 3],
    }
    r.state = read_rate(r.key)
    local d = check(r.state, r, now, dry and 0 or r.cost)
    if not d.allowed then outcome = 1 end
    rates[i], decisions[i] = r, d
    k, a = k + 1, a + 4
  end

  local ckey, crem, cat, cver, cchanged, cspent
  if A[5] == 1 then
    ckey = KEYS[k]
    crem, cat, cver, cchanged = current_credits(ckey, a)
    local cost = A[a + 5]
    if not dry and cost ~= 0 then
      if cost > crem then
        cspent = false
      else
        cspent = crem - cost
      end
    end
    k, a = k + 1, a + 6
  end

  local bkey, bspent, bstart, bchanged, bnew
  if A[6] == 1 then
    bkey = KEYS[k]
    local limit, pstart = A[a], A[a + 1]
    local s = redis.call('HMGET', bkey, 'spent', 'period_start')
    local exists = s[1] ~= false
    if exists then
      bspent, bstart = tonumber(s[1]), tonumber(s[2])
    else
      bspent, bstart = A[a + 2], A[a + 3]
    end
    if pstart ~= -1 and bstart < pstart then
      bspent, bstart = 0, pstart
    end
    bchanged = not exists or bspent ~= tonumber(s[1]) or bstart ~= tonumber(s[2])
    local spend = A[a + 4]
    if not dry and spend ~= 0 then
      if spend > limit - bspent then
        bnew = false
      else
        bnew = bspent + spend
      end
    end
    k, a = k + 1, a + 5
  end

  local lkey
  if A[7] == 1 then
    lkey = KEYS[k]
    if outcome == 0 and not dry then
      local live = redis.call('ZCOUNT', lkey, '(' .. fmt(now), '+inf')
      if live >= A[a] then outcome = 2 end
    end
  end
  if outcome == 0 and cspent == false then outcome = 3 end
  if outcome == 0 and bnew == false then outcome = 4 end

  local reply = {outcome}
  if outcome ~= 0 or dry then
    -- nothing is consumed: report every limit as it stands
    for i = 1, nrates do
      local d = decisions[i]
      if not dry and rates[i].cost ~= 0 then d = check(rates[i].state, rates[i], now, 0) end
      reply[#reply + 1] = d.remaining
      reply[#reply + 1] = d.reset_at
    end
    if ckey then
      reply[#reply + 1] = crem
      reply[#reply + 1] = cat
      reply[#reply + 1] = cver
      reply[#reply + 1] = 0
    end
    if bkey then
      reply[#reply + 1] = bspent
      reply[#reply + 1] = bstart
      reply[#reply + 1] = 0
    end
    return reply
  end

  for i = 1, nrates do
    reply[#reply + 1] = decisions[i].remaining
    reply[#reply + 1] = decisions[i].reset_at
  end
  if ckey then
    local written = 0
    if cspent then crem = cspent end
    if cspent or cchanged then
      write_credits(ckey, crem, cat, cver)
      written = 1
    end
    reply[#reply + 1] = crem
    reply[#reply + 1] = cat
    reply[#reply + 1] = cver
    reply[#reply + 1] = written
  end
  if bkey then
    local written = 0
    if bnew then bspent = bnew end
    if bnew or bchanged then
      redis.call('HSET', bkey, 'spent', fmt(bspent), 'period_start', fmt(bstart))
      redis.call('PEXPIRE', bkey, fmt(A[#A]))
      written = 1
    end
    reply[#reply + 1] = bspent
    reply[#reply + 1] = bstart
    reply[#reply + 1] = written
  end
  if lkey then
    redis.call('ZREMRANGEBYSCORE', lkey, '-inf', fmt(now))
    redis.call('ZADD', lkey, fmt(now + A[a + 1]), ARGV[2])
    local last = redis.call('ZRANGE', lkey, -1, -1, 'WITHSCORES')
    local ttl = tonumber(last[2]) - now
    if ttl < 1 then ttl = 1 end
    redis.call('PEXPIRE', lkey, fmt(ttl))
  end
  local seen = {}
  for i = 1, nrates do
    local r, d = rates[i], decisions[i]
    if r.cost ~= 0 then
      local m = #d.slots
      local rewrite = d.rescaled or seen[r.key]
      if rewrite then
        -- renumbered buckets (or a slot charged twice: the last charge wins, as in memory)
        local fields = {'w', fmt(r.width)}
        for j = 1, m do
          fields[#fields + 1] = fmt(d.slots[j])
          fields[#fields + 1] = fmt(d.counts[j])
        end
        redis.call('DEL', r.key)
        redis.call('HSET', r.key, unpack(fields))
      else
        if #d.pruned > 0 then redis.call('HDEL', r.key, unpack(d.pruned)) end
        redis.call('HSET', r.key, 'w', fmt(r.width), fmt(d.slots[d.at]), fmt(d.counts[d.at]))
      end
      seen[r.key] = true
      if rewrite or d.moved then
        -- kept until the newest bucket leaves the window: at most window + bucket
        local ttl = d.reset_at - now
        if ttl < 1 then ttl = 1 end
        redis.call('PEXPIRE', r.key, fmt(ttl))
      end
      reply[#reply + 1] = r.width
      reply[#reply + 1] = m
      for j = 1, m do reply[#reply + 1] = d.slots[j] end
      for j = 1, m do reply[#reply + 1] = d.counts[j] end
    end
  end
  return reply
end

if op == 2 then  -- release
  local now = clock(A[2])
  local expires = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if not expires then return 0 end
  redis.call('ZREM', KEYS[1], ARGV[2])
  if tonumber(expires) > now then return 1 end
  return 0
end

if op == 3 then  -- set credits
  write_credits(KEYS[1], A[2], A[3], A[4])
  return 1
end

if op == 4 then  -- adjust credits
  local rem, at, ver = current_credits(KEYS[1], 2)
  rem = rem + A[7]
  if rem < 0 or rem > MAX then return {0} end
  write_credits(KEYS[1], rem, at, ver)
  return {1, rem, at, ver}
end

return redis.error_reply('keyrack: unknown operation')
"""

_APPLY, _RELEASE, _SET, _ADJUST = 1, 2, 3, 4
_REDIS_TIME: Final = -1
"""``now_ms`` that makes the script read Redis' clock."""

_SHA: Final = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def key_name(tenant_id: str, kind: str, slot: str) -> str:
    """The Redis key of one counter: ``keyrack:{<tenant_id>}:<kind>:<slot>``.

    Args:
        tenant_id: The tenant; in braces, it is the Cluster hash tag.
        kind: ``rl``, ``cr``, ``bg`` or ``ls``.
        slot: The counter's slot name (``keyrack.domain.limits``).

    Returns:
        The key.
    """
    return f"keyrack:{{{tenant_id}}}:{kind}:{slot}"


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    # A script running past lua-time-limit makes Redis answer BUSY to everyone else.
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("BUSY")


class RedisLimitStore:
    """The ``LimitStore`` shared by every replica: one Lua script, one round trip per call.

    Attributes:
        round_trips: Commands sent to Redis by this store so far (one per call, two when Redis
            had to be sent the script again).
    """

    __slots__ = ("_client", "_now_ms", "round_trips")

    def __init__(self, client: aioredis.Redis, *, now_ms: Callable[[], int] | None = None) -> None:
        """Wrap ``client``.

        Args:
            client: An asyncio Redis client; the store closes it in ``close``.
            now_ms: Epoch milliseconds for every decision, or ``None`` (the default) to use
                Redis' own clock, which every replica shares.
        """
        self._client = client
        self._now_ms = now_ms
        self.round_trips = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout: float = 0.25,
        timeout: float = 0.5,
        now_ms: Callable[[], int] | None = None,
    ) -> Self:
        """Build a store on a new client for ``url`` (``redis://`` or ``rediss://``).

        The client never retries by itself: a retried script could charge twice, and the
        failure policy needs to hear about a dead Redis within one timeout.

        Args:
            url: The Redis URL (``KEYRACK_REDIS_URL``).
            connect_timeout: Seconds to wait for a connection.
            timeout: Seconds to wait for a reply.
            now_ms: As for the constructor.

        Returns:
            The store; nothing connects until the first call.
        """
        client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            socket_keepalive=True,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, now_ms=now_ms)

    def _now_arg(self) -> int:
        now_ms = self._now_ms
        return _REDIS_TIME if now_ms is None else now_ms()

    async def _run(self, keys: list[str], numbers: list[int], *extra: str) -> object:
        """EVALSHA the script with ``numbers`` packed in one argument; EVAL it if Redis lost it.

        Raises:
            BackendUnavailable: Redis cannot be reached or cannot serve now.
        """
        client = self._client
        packed = pack(f"<{len(numbers)}q", *numbers)
        self.round_trips += 1
        try:
            try:
                return await client.evalsha(_SHA, len(keys), *keys, packed, *extra)
            except redis_errors.NoScriptError:
                self.round_trips += 1
                return await client.eval(_SCRIPT, len(keys), *keys, packed, *extra)
        except (redis_errors.RedisError, OSError) as exc:
            if _is_unavailable(exc):
                raise BackendUnavailable() from exc
            raise

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """Decide and, when everything admits (and not ``dry_run``), consume, atomically.

        Args:
            request: What the request is charged (``keyrack.domain.limits.apply``).
            dry_run: Report the current state without consuming anything.

        Returns:
            What ``keyrack.domain.limits.apply`` returns for the stored counters.

        Raises:
            BackendUnavailable: Redis cannot be reached.
            InvalidInput: A rate cost is out of bounds.
        """
        rates = request.rates
        credits = request.credits
        budget = request.budget
        lease = request.lease
        if not rates and credits is None and budget is None and lease is None:
            return LimitAnswer(Outcome.VALID)
        prefix = f"keyrack:{{{request.tenant_id}}}:"
        keys: list[str] = []
        args: list[int] = [
            _APPLY,
            self._now_arg(),
            int(dry_run),
            len(rates),
            int(credits is not None),
            int(budget is not None),
            int(lease is not None),
        ]
        for charge in rates:
            cost = charge.cost
            if not dry_run and not 0 <= cost <= MAX_COST:
                raise InvalidInput(f"cost must be an integer 0 … {MAX_COST}", field="cost")
            limit = charge.limit
            keys.append(prefix + "rl:" + charge.slot)
            args += (limit.limit, limit.window_ms, limit.bucket_ms, cost)
        if credits is not None:
            keys.append(prefix + "cr:" + credits.slot)
            args += (
                credits.seed_remaining,
                credits.seed_refilled_at_ms,
                credits.seed_version,
                credits.refill_amount,
                credits.boundary_ms,
                credits.cost,
            )
        if budget is not None:
            keys.append(prefix + "bg:" + budget.slot)
            args += (
                budget.limit,
                budget.period_start_ms,
                budget.seed_spent,
                budget.seed_period_start_ms,
                budget.spend,
            )
        if lease is not None:
            keys.append(prefix + "ls:" + lease.slot)
            args += (lease.max_concurrency, lease.ttl_ms)
        args.append(CREDIT_IDLE_TTL_MS)  # the last number, for credits and budget
        if lease is None:
            reply = cast("list[int]", await self._run(keys, args))
        else:
            reply = cast("list[int]", await self._run(keys, args, lease.lease_id))
        return _decode(request, reply, dry_run=dry_run)

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        """Give a lease back; whether it was live (releasing twice is harmless).

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        reply = await self._run(
            [key_name(tenant_id, "ls", slot)], [_RELEASE, self._now_arg()], lease_id
        )
        return reply == 1

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        """Replace a balance (an explicit set always wins over what is stored).

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        await self._run(
            [key_name(tenant_id, "cr", slot)],
            [_SET, state.remaining, state.refilled_at_ms, state.version, CREDIT_IDLE_TTL_MS],
        )

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        """Add ``delta`` to the current balance atomically (``limits.adjust_credits``).

        Returns:
            The new balance, or ``None`` (nothing changes) when it would leave 0 … max.

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        if not -MAX_AMOUNT <= delta <= MAX_AMOUNT:
            # Out of range whatever the balance (0 … MAX_AMOUNT): no need to ask Redis.
            return None
        reply = cast(
            "list[int]",
            await self._run(
                [key_name(tenant_id, "cr", charge.slot)],
                [
                    _ADJUST,
                    charge.seed_remaining,
                    charge.seed_refilled_at_ms,
                    charge.seed_version,
                    charge.refill_amount,
                    charge.boundary_ms,
                    delta,
                    CREDIT_IDLE_TTL_MS,
                ],
            ),
        )
        if not reply[0]:
            return None
        return CreditState(reply[1], reply[2], reply[3])

    async def close(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()


def _decode(request: LimitRequest, reply: list[int], *, dry_run: bool) -> LimitAnswer:
    """Turn the script's flat reply into the ``LimitAnswer`` the domain would return."""
    outcome = _OUTCOMES[reply[0]]
    i = 1
    reports: list[RateReport] = []
    for charge in request.rates:
        reports.append(RateReport(charge.limit.name, charge.limit.limit, reply[i], reply[i + 1]))
        i += 2
    credits = new_credits = None
    if request.credits is not None:
        credits = CreditState(reply[i], reply[i + 1], reply[i + 2])
        if reply[i + 3]:
            new_credits = credits
        i += 4
    budget = new_budget = None
    if request.budget is not None:
        budget = BudgetState(reply[i], reply[i + 1])
        if reply[i + 2]:
            new_budget = budget
        i += 3
    if outcome is not Outcome.VALID or dry_run:
        return LimitAnswer(outcome, tuple(reports), credits, budget)
    new_rates: list[tuple[str, State]] = []
    for charge in request.rates:
        if charge.cost:
            width, count = reply[i], reply[i + 1]
            start = i + 2
            middle = start + count
            end = middle + count
            # The script keeps buckets in hash order; a State lists them by bucket number.
            buckets = sorted(zip(reply[start:middle], reply[middle:end], strict=True))
            new_rates.append(
                (
                    charge.slot,
                    State(width, tuple(b[0] for b in buckets), tuple(b[1] for b in buckets)),
                )
            )
            i = end
    lease = request.lease
    return LimitAnswer(
        Outcome.VALID,
        tuple(reports),
        credits,
        budget,
        None if lease is None else lease.lease_id,
        tuple(new_rates),
        new_credits,
        new_budget,
    )
