"""Verify cost against the number of stored keys: 1,000 vs 1,000,000 (DESIGN.md §9).

Builds two SQLite databases in a temporary directory. Keys are NOT created through the service
(far too slow for a million): rows go straight into ``tenants``, ``api_keys`` and
``key_secrets`` with SQLAlchemy Core ``executemany``, one transaction per batch, with keys from
``keyrack.domain.keys.generate`` and digests from ``keyrack.domain.hashing.Peppers`` under the
same pepper the runtime uses. Then, with both runtimes open:

- cold verify: both caches cleared, 1,000 random keys of each database verified once each
  (one SQL query each), alternating between the databases call by call; the figure is the
  median single-call latency, the ratio that of the medians.
- warm verify: a working set of min(10,000, keys) random keys is loaded into each cache, then
  verified in shuffled order, rounds rotating between the databases; the ratio is the median
  of the per-round ratios. A control runs the large database over a working set as small as
  the small database's.

Targets: cold and warm ratios 1M / 1k each within 1.2x.

    python bench/verify_scale.py [--quick] [--keys SMALL,LARGE] [--rounds R] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from _common import BenchSecrets, Results, gc_paused, header, median, sqlite_url
from sqlalchemy import Connection, Dialect, Table, create_engine

from keyrack.domain import base62, ids
from keyrack.domain import keys as keyformat
from keyrack.domain.hashing import Peppers
from keyrack.domain.verification import Outcome
from keyrack.runtime import Runtime, open_runtime
from keyrack.store import migrate
from keyrack.store.engine import make_engine
from keyrack.store.tables import ApiKeyRow, KeySecretRow, TenantRow

TARGET_RATIO = 1.2
WORKING_SET = 10_000
BATCH = 50_000
PREFIX = "sk"

Row = tuple[object, ...]


@dataclass
class Database:
    """One benchmark database and the plaintext keys kept for sampling (never printed)."""

    n_keys: int
    url: str
    path: Path
    pool: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    runtime: Runtime | None = None
    working_set: list[str] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    control: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``1,000 keys`` and the like."""
        return f"{self.n_keys:,} keys"

    @property
    def rt(self) -> Runtime:
        """The open runtime."""
        if self.runtime is None:
            raise RuntimeError("runtime not open")
        return self.runtime


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


_TRIPLES: list[str] = []


def fast_id(prefix: str, now_ms: int, entropy: bytes) -> str:
    """``ids.new_id`` with a 3-digit lookup table: same output, a fifth of the cost.

    The million-key build spends most of its time encoding base62; ``main`` checks this
    against ``ids.new_id`` before using it.
    """
    if not _TRIPLES:
        alphabet = base62.ALPHABET
        _TRIPLES.extend(a + b + c for a in alphabet for b in alphabet for c in alphabet)
    number = ((now_ms & 0xFFFF_FFFF_FFFF) << 80) | int.from_bytes(entropy, "big")
    triples = _TRIPLES
    parts: list[str] = []
    for _ in range(7):  # 22 digits: 7 triples and one leading digit
        number, rem = divmod(number, 238_328)
        parts.append(triples[rem])
    parts.append(base62.ALPHABET[number])
    parts.reverse()
    return f"{prefix}_{''.join(parts)}"


def check_fast_id() -> None:
    """Refuse to run if ``fast_id`` ever differs from ``ids.new_id``."""
    probe = random.Random(0)
    for now_ms in (0, 1, 1_800_000_000_000, 0xFFFF_FFFF_FFFF):
        for _ in range(50):
            entropy = probe.randbytes(ids.ENTROPY_BYTES)
            if fast_id("key", now_ms, entropy) != ids.new_id("key", now_ms=now_ms, entropy=entropy):
                raise SystemExit("fast_id differs from keyrack.domain.ids.new_id")


def _insert_sql(
    table: Table, varying: tuple[str, ...], constants: dict[str, object], dialect: Dialect
) -> tuple[str, tuple[object, ...]]:
    """An ``INSERT`` with ``varying`` columns first, and the constants' bound values.

    Constants go through each column's own bind processor (JSON, UTC datetimes, booleans), so
    the stored values are exactly what the ORM would write; every column must be named.
    """
    names = {column.name for column in table.columns}
    if names != set(varying) | set(constants):
        raise SystemExit(f"{table.name}: columns changed, update the bench: {sorted(names)}")
    bound: list[object] = []
    for name, value in constants.items():
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        bound.append(processor(value) if processor is not None and value is not None else value)
    columns = (*varying, *constants)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    return sql, tuple(bound)


@dataclass(frozen=True)
class BulkStatements:
    """The three INSERTs of the bulk load and their constant values."""

    tenant: tuple[str, Row]
    key: tuple[str, Row]
    secret: tuple[str, Row]


def bulk_statements(
    dialect: Dialect, tenant_id: str, moment: datetime, pepper_version: int
) -> BulkStatements:
    """INSERTs for one tenant, then keys (``id``, ``start``) and secrets (``id``, ``key_id``,
    ``digest``, ``start``) with every other column constant."""
    tenant = _insert_sql(
        cast(Table, TenantRow.__table__),
        (),
        {
            "id": tenant_id,
            "name": "Bench",
            "slug": "bench",
            "key_prefix": PREFIX,
            "created_at": moment,
            "updated_at": moment,
        },
        dialect,
    )
    key = _insert_sql(
        cast(Table, ApiKeyRow.__table__),
        ("id", "start"),
        {
            "tenant_id": tenant_id,
            "name": "bench",
            "description": None,
            "status": "active",
            "expires_at": None,
            "owner_id": None,
            "identity_id": None,
            "meta": {},
            "permissions": [],
            "roles": [],
            "system": False,
            "recoverable": False,
            "version": 1,
            "created_at": moment,
            "updated_at": moment,
            "revoked_at": None,
            "last_used_at": None,
        },
        dialect,
    )
    secret = _insert_sql(
        cast(Table, KeySecretRow.__table__),
        ("id", "key_id", "digest", "start"),
        {
            "tenant_id": tenant_id,
            "pepper_version": pepper_version,
            "created_at": moment,
            "expires_at": None,
        },
        dialect,
    )
    return BulkStatements(tenant, key, secret)


def generate_batch(
    indexes: range,
    *,
    base_ms: int,
    statements: BulkStatements,
    peppers: Peppers,
    kept_indexes: set[int],
    pool: list[str],
) -> tuple[list[Row], list[Row]]:
    """Rows of ``api_keys`` and ``key_secrets`` for the keys numbered ``indexes``."""
    urandom = os.urandom
    generate = keyformat.generate
    display_start = keyformat.display_start
    digest = peppers.digest
    key_constants = statements.key[1]
    secret_constants = statements.secret[1]
    key_rows: list[Row] = []
    secret_rows: list[Row] = []
    for index in indexes:
        # One time-ordered id body per key: "key_<body>" and "sec_<body>" live in different
        # tables, so sharing the body keeps both unique at half the cost.
        key_id = fast_id("key", base_ms + index, urandom(ids.ENTROPY_BYTES))
        plaintext = generate(PREFIX, entropy=urandom(keyformat.RANDOM_BYTES))
        start = display_start(plaintext)
        key_rows.append((key_id, start, *key_constants))
        secret_rows.append(
            ("sec" + key_id[3:], key_id, digest(plaintext), start, *secret_constants)
        )
        if index in kept_indexes:
            pool.append(plaintext)
    return key_rows, secret_rows


def build(db: Database, peppers: Peppers, keep: int, rng: random.Random) -> None:
    """Migrate, then bulk-insert ``db.n_keys`` keys; keep ``keep`` random plaintexts."""
    asyncio.run(_migrate(db.url))
    kept_indexes = set(rng.sample(range(db.n_keys), min(keep, db.n_keys)))
    moment = datetime.now(UTC)
    base_ms = int(moment.timestamp() * 1000) - db.n_keys
    tenant_id = fast_id("ten", base_ms, os.urandom(ids.ENTROPY_BYTES))
    engine = create_engine(f"sqlite:///{db.path}")
    statements = bulk_statements(engine.dialect, tenant_id, moment, peppers.current_version)
    started = time.perf_counter()

    def insert_batch(conn: Connection, key_rows: list[Row], secret_rows: list[Row]) -> None:
        with conn.begin():  # Core executemany, one transaction per batch
            conn.exec_driver_sql(statements.key[0], key_rows)
            conn.exec_driver_sql(statements.secret[0], secret_rows)

    # The inserting thread runs batch k while this one generates batch k+1: sqlite3 releases
    # the GIL inside each statement step, so key generation and B-tree work can overlap.
    try:
        with engine.connect() as conn, ThreadPoolExecutor(1) as inserter:
            # Bulk-load settings for this connection only (no other connection is open); the
            # runtime's engine turns WAL back on when it connects.
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            conn.commit()
            with conn.begin():
                conn.exec_driver_sql(*statements.tenant)
            pending: Future[None] | None = None
            for first in range(0, db.n_keys, BATCH):
                last = min(first + BATCH, db.n_keys)
                rows = generate_batch(
                    range(first, last),
                    base_ms=base_ms,
                    statements=statements,
                    peppers=peppers,
                    kept_indexes=kept_indexes,
                    pool=db.pool,
                )
                if pending is not None:
                    pending.result()
                if db.n_keys > BATCH and first and first % (4 * BATCH) == 0:
                    rate = first / (time.perf_counter() - started)
                    print(f"  {db.label}: {first:,} inserted ({rate:,.0f} keys/s)", flush=True)
                pending = inserter.submit(insert_batch, conn, *rows)
            if pending is not None:
                pending.result()
    finally:
        engine.dispose()
    db.build_seconds = time.perf_counter() - started
    rng.shuffle(db.pool)


async def cold_pairs(small: Database, large: Database, count: int) -> None:
    """Cold verifies alternating between the two databases key by key, caches cleared first.

    Alternating per call means other work on the machine hits both databases alike. The keys
    are the first ``count`` of each working set, so this also starts loading the caches.
    """
    for db in (small, large):
        db.rt.key_cache.clear()
    for index in range(count):
        for db in (small, large) if index % 2 == 0 else (large, small):
            secret = db.working_set[index]
            start = time.perf_counter_ns()
            result = await db.rt.verifier.verify(secret)
            db.cold.append(time.perf_counter_ns() - start)
            if result.outcome is not Outcome.VALID:
                raise SystemExit(f"{db.label}: a cold verify did not answer VALID")


async def load(db: Database, keys: list[str], concurrency: int = 4) -> None:
    """Load ``keys`` into the cache (one cold verify each, a few at once: fewer than the
    pool's five connections, so none is opened and closed per batch)."""
    for first in range(0, len(keys), concurrency):
        chunk = keys[first : first + concurrency]
        answers = await asyncio.gather(*(db.rt.verifier.verify(secret) for secret in chunk))
        if any(answer.outcome is not Outcome.VALID for answer in answers):
            raise SystemExit(f"{db.label}: a verify did not answer VALID")


async def warm_round(db: Database, sequence: list[str]) -> float:
    """Nanoseconds per warm verify over ``sequence`` (every key already cached)."""
    verify = db.rt.verifier.verify
    size = len(db.rt.key_cache)
    with gc_paused():
        start = time.perf_counter_ns()
        for secret in sequence:
            await verify(secret)
        elapsed = time.perf_counter_ns() - start
    if len(db.rt.key_cache) != size:
        raise SystemExit(f"{db.label}: the warm round missed the cache")
    return elapsed / len(sequence)


def cycle_to(keys: list[str], length: int, rng: random.Random) -> list[str]:
    """``length`` verifies cycling through ``keys``, each cycle freshly shuffled."""
    sequence: list[str] = []
    while len(sequence) < length:
        cycle = keys[:]
        rng.shuffle(cycle)
        sequence.extend(cycle)
    return sequence[:length]


@dataclass(frozen=True)
class Plan:
    """How much each phase measures."""

    rounds: int
    cold_count: int
    warm_length: int
    working_set: int


async def measure(
    small: Database,
    large: Database,
    bench: BenchSecrets,
    tmp: Path,
    *,
    plan: Plan,
    rng: random.Random,
) -> dict[str, float]:
    """Open both runtimes, run the cold pairs, load the caches, run the warm rounds.

    Returns:
        Seconds spent in each phase.
    """
    phases: dict[str, float] = {}
    dbs = (small, large)
    for db in dbs:
        settings = bench.settings(db.url, tmp, cache_ttl_seconds=3600)
        db.runtime = await open_runtime(settings, run_migrations=False)
        db.working_set = db.pool[: min(plan.working_set, len(db.pool))]
    try:
        mark = time.perf_counter()
        for db in dbs:  # open the pool's connections and compile the statement
            await load(db, db.pool[-20:])
        await cold_pairs(small, large, min(plan.cold_count, len(small.working_set)))
        phases["cold pairs"] = time.perf_counter() - mark

        mark = time.perf_counter()
        for db in dbs:
            await load(db, db.working_set[len(db.cold) :])
            if len(db.rt.key_cache) < len(db.working_set):
                raise SystemExit(f"{db.label}: the working set is not all cached")
        phases["load working sets"] = time.perf_counter() - mark

        # The control verifies the large database over a working set as small as the small
        # database's, which separates "keys stored" from "entries in use".
        mark = time.perf_counter()
        control = Database(large.n_keys, large.url, large.path, runtime=large.runtime)
        control.working_set = large.working_set[: len(small.working_set)]
        sequences = {
            id(db): cycle_to(db.working_set, plan.warm_length, rng)
            for db in (small, large, control)
        }
        order = [small, large, control]
        for db in order:
            await warm_round(db, sequences[id(db)][: plan.warm_length // 4])  # warm-up
        for _ in range(plan.rounds):
            for db in order:
                db.warm.append(await warm_round(db, sequences[id(db)]))
            order = order[1:] + order[:1]
        large.control = control.warm
        phases["warm rounds"] = time.perf_counter() - mark
    finally:
        mark = time.perf_counter()
        for db in dbs:
            if db.runtime is not None:
                await db.runtime.close()
        phases["close (flushes last_used_at)"] = time.perf_counter() - mark
    return phases


def report(small: Database, large: Database, plan: Plan, phases: dict[str, float]) -> Results:
    """Print the figures and build the RESULT lines."""
    cold = {db.n_keys: median(db.cold) for db in (small, large)}
    cold_ratio = cold[large.n_keys] / cold[small.n_keys]
    warm_ratios = [lg / sm for lg, sm in zip(large.warm, small.warm, strict=True)]
    control_ratios = [c / sm for c, sm in zip(large.control, small.warm, strict=True)]
    warm_ratio = median(warm_ratios)
    print(
        f"cold: {len(small.cold)} verifies per database, alternating between them key by key; "
        "median single-call latency (and the medians of five consecutive slices)"
    )
    for db in (small, large):
        step = max(1, len(db.cold) // 5)
        slices = ", ".join(
            f"{median(db.cold[i : i + step]) / 1000:.0f}" for i in range(0, len(db.cold), step)
        )
        print(f"  {db.label:>16}: {cold[db.n_keys] / 1000:8.1f} µs  (slices {slices})")
    print(
        f"warm: {plan.rounds} rounds of {plan.warm_length:,} verifies each, rotating between "
        "the databases; ratio = median of per-round ratios"
    )
    for db, ratios in ((small, None), (large, warm_ratios)):
        extra = "" if ratios is None else f"  ratio {median(ratios):.2f}x"
        print(
            f"  {db.label:>16}: {median(db.warm) / 1000:6.2f} µs over "
            f"{len(db.working_set):,} cached keys (rounds {min(db.warm) / 1000:.2f} … "
            f"{max(db.warm) / 1000:.2f}){extra}"
        )
    print(
        f"  control: {large.label} over {len(small.working_set):,} cached keys: "
        f"{median(large.control) / 1000:.2f} µs, ratio {median(control_ratios):.2f}x"
    )
    print("phases: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in phases.items()))
    results = Results()
    results.add("build_large_seconds", f"{large.build_seconds:.1f} s", "report", True)
    results.add(
        "cold_verify_ratio",
        f"{cold_ratio:.2f}x ({cold[large.n_keys] / 1000:.0f} µs vs "
        f"{cold[small.n_keys] / 1000:.0f} µs)",
        f"<= {TARGET_RATIO}x",
        cold_ratio <= TARGET_RATIO,
    )
    results.add(
        "warm_verify_ratio",
        f"{warm_ratio:.2f}x (median of per-round ratios; medians "
        f"{median(large.warm) / 1000:.2f} µs vs {median(small.warm) / 1000:.2f} µs)",
        f"<= {TARGET_RATIO}x",
        warm_ratio <= TARGET_RATIO,
    )
    return results


def main() -> int:
    """Parse flags, build, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run (500 vs 20,000 keys)")
    parser.add_argument("--keys", default=None, help="SMALL,LARGE key counts (1000,1000000)")
    parser.add_argument("--rounds", type=int, default=None, help="warm rounds")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    args = parser.parse_args()
    default_keys = "500,20000" if args.quick else "1000,1000000"
    small_n, large_n = (
        int(part.replace("_", "")) for part in (args.keys or default_keys).split(",")
    )
    plan = Plan(
        rounds=args.rounds or (5 if args.quick else 15),
        cold_count=300 if args.quick else 1_000,
        warm_length=5_000 if args.quick else 10_000,
        working_set=500 if args.quick else WORKING_SET,
    )
    rng = random.Random(args.seed)
    header(f"verify_scale: {small_n:,} vs {large_n:,} keys", args.quick)
    check_fast_id()
    bench = BenchSecrets()
    peppers = Peppers({1: bench.pepper_bytes})
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        small = Database(small_n, sqlite_url(tmp, "small.db"), tmp / "small.db")
        large = Database(large_n, sqlite_url(tmp, "large.db"), tmp / "large.db")
        for db in (small, large):
            build(db, peppers, plan.working_set + 100, rng)
            size_mb = sum(p.stat().st_size for p in tmp.glob(f"{db.path.name}*")) / 1e6
            print(
                f"built {db.label}: {db.build_seconds:.1f} s "
                f"({db.n_keys / db.build_seconds:,.0f} keys/s), {size_mb:,.0f} MB on disk"
            )
        phases = {"build": small.build_seconds + large.build_seconds}
        phases.update(asyncio.run(measure(small, large, bench, tmp, plan=plan, rng=rng)))
    results = report(small, large, plan, phases)
    if args.quick:
        print("(quick mode: smoke run with a smaller large database; figures are noisy)")
    return results.emit()


if __name__ == "__main__":
    raise SystemExit(main())
