"""One round trip per apply, whatever the number of limits (DESIGN.md §9), counted three ways.

1. The store's own ``round_trips`` counter.
2. A counting TCP proxy between the store and the test Redis: it parses the RESP commands the
   client sends, so it sees every command on the wire, and nothing from other clients.
3. Redis' own statistics on a private ``redis-server`` that nobody else talks to, read with
   ``INFO`` on a separate connection whose own reads are subtracted: ``total_reads_processed``
   (requests the server read off its sockets: one per round trip) and ``cmdstat_evalsha``.
   (``total_commands_processed`` would not do: it also counts the commands a script calls.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from keyrack.domain.limits import (
    BudgetCharge,
    CreditCharge,
    CreditState,
    LeaseCharge,
    LimitRequest,
    RateCharge,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome
from tests.fakes import FakeClock
from tests.integration.backends.conftest import (
    RedisServer,
    Tenants,
    fake_now_ms,
    need_redis_url,
)

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

T0 = 1_800_000_000_000


def verify_like(tenant: str, n_rates: int, lease_id: str) -> LimitRequest:
    """Everything a verify can charge: ``n_rates`` rate limits, credits, budget and a lease."""
    return LimitRequest(
        tenant,
        rates=tuple(
            RateCharge(f"k:key_1:r{i}", RateLimit(f"r{i}", 1_000, 1_000 * (i + 1)), 1)
            for i in range(n_rates)
        ),
        credits=CreditCharge("k:key_1", 1_000, T0, 1, 0, -1, 1),
        budget=BudgetCharge("k:key_1", 10**9, 8 * 10**8, -1, 0, 0, 10),
        lease=LeaseCharge("k:key_1", 1_000, 60_000, lease_id),
    )


class RespCounter:
    """Counts complete RESP commands (arrays of bulk strings) in a byte stream."""

    def __init__(self) -> None:
        self.buffer = b""
        self.names: list[str] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while (parsed := self._one()) is not None:
            name, used = parsed
            self.names.append(name)
            self.buffer = self.buffer[used:]

    def _one(self) -> tuple[str, int] | None:
        buf = self.buffer
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        assert buf[:1] == b"*", buf[:20]  # redis-py sends arrays only
        count = int(buf[1:end])
        pos = end + 2
        parts: list[bytes] = []
        for _ in range(count):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            assert buf[pos : pos + 1] == b"$"
            size = int(buf[pos + 1 : end])
            start = end + 2
            if len(buf) < start + size + 2:
                return None
            parts.append(buf[start : start + size])
            pos = start + size + 2
        return parts[0].decode().upper(), pos


class CountingProxy:
    """A TCP proxy to the test Redis that counts what its clients send."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.commands = RespCounter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        counter: RespCounter | None,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if counter is not None:
                    counter.feed(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, self.commands)),
            asyncio.create_task(self._pipe(up_reader, writer, None)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def proxy() -> AsyncIterator[CountingProxy]:
    url = urlsplit(need_redis_url())
    counting = CountingProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await counting.start()
    try:
        yield counting
    finally:
        await counting.close()


def proxied_url(proxy: CountingProxy) -> str:
    url = urlsplit(need_redis_url())
    return url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


class TestOnTheWire:
    @pytest.mark.parametrize("n_rates", [0, 1, 3, 8], ids=lambda n: f"{n}-rate-limits")
    async def test_each_apply_sends_one_evalsha(
        self, proxy: CountingProxy, clock: FakeClock, tenants: Tenants, redis_client, n_rates: int
    ):
        from keyrack.backends.redis import RedisLimitStore

        tenant = tenants.new()
        store = RedisLimitStore.from_url(proxied_url(proxy), now_ms=fake_now_ms(clock))
        try:
            await store.apply(verify_like(tenant, n_rates, "warm-up"))  # connects, loads script
            proxy.commands.names.clear()
            before = store.round_trips

            answers = [await store.apply(verify_like(tenant, n_rates, f"l{i}")) for i in range(10)]

            assert all(a.outcome is Outcome.VALID for a in answers)
            assert 10 == store.round_trips - before
            assert ["EVALSHA"] * 10 == proxy.commands.names
        finally:
            await store.close()

    async def test_release_set_and_adjust_are_one_command_each(
        self, proxy: CountingProxy, clock: FakeClock, tenants: Tenants, redis_client
    ):
        from keyrack.backends.redis import RedisLimitStore

        tenant = tenants.new()
        store = RedisLimitStore.from_url(proxied_url(proxy), now_ms=fake_now_ms(clock))
        try:
            request = verify_like(tenant, 1, "l0")
            await store.apply(request)
            proxy.commands.names.clear()
            before = store.round_trips
            assert request.credits is not None

            await store.release(tenant, "k:key_1", "l0")
            await store.set_credits(tenant, "k:key_1", CreditState(7, T0, 2))
            await store.adjust_credits(tenant, request.credits, 5)

            assert 3 == store.round_trips - before
            assert ["EVALSHA"] * 3 == proxy.commands.names
        finally:
            await store.close()


async def _stats(client) -> tuple[int, int, int]:
    """``(total_reads_processed, evalsha calls, eval calls)`` of the private server."""
    info = await client.info("all")
    return (
        info["total_reads_processed"],
        info.get("cmdstat_evalsha", {}).get("calls", 0),
        info.get("cmdstat_eval", {}).get("calls", 0),
    )


class TestServerStatistics:
    async def test_redis_reads_one_request_per_apply(
        self, own_redis: RedisServer, clock: FakeClock
    ):
        import redis.asyncio as aioredis

        from keyrack.backends.redis import RedisLimitStore

        observer = aioredis.Redis.from_url(own_redis.url)
        store = RedisLimitStore.from_url(own_redis.url, now_ms=fake_now_ms(clock))
        try:
            await store.apply(verify_like("ten_a", 3, "warm-up"))
            assert 2 == store.round_trips  # a fresh server: NOSCRIPT, then EVAL
            # Two stats reads back to back: what reading the statistics itself costs.
            first = await _stats(observer)
            second = await _stats(observer)
            reading_cost = second[0] - first[0]

            for i in range(20):
                await store.apply(verify_like("ten_a", i % 6, f"l{i}"))
            after = await _stats(observer)

            assert 20 == after[0] - second[0] - reading_cost
            assert 20 == after[1] - second[1]
            assert after[2] == second[2]  # no EVAL: the script stayed cached
            assert 22 == store.round_trips
        finally:
            await observer.aclose()
            await store.close()

    async def test_a_flushed_script_costs_one_extra_round_trip(
        self, own_redis: RedisServer, clock: FakeClock
    ):
        import redis.asyncio as aioredis

        from keyrack.backends.redis import RedisLimitStore

        observer = aioredis.Redis.from_url(own_redis.url)
        store = RedisLimitStore.from_url(own_redis.url, now_ms=fake_now_ms(clock))
        try:
            await store.apply(verify_like("ten_a", 1, "l0"))
            await observer.script_flush()
            before = store.round_trips

            answer = await store.apply(verify_like("ten_a", 1, "l1"))
            again = await store.apply(verify_like("ten_a", 1, "l2"))

            assert (Outcome.VALID, Outcome.VALID) == (answer.outcome, again.outcome)
            assert 3 == store.round_trips - before
        finally:
            await observer.aclose()
            await store.close()
