"""SQL statements per verify, counted at the driver (DESIGN.md §9: 0 warm, 1 cold, writes batched).

A ``before_cursor_execute`` listener on ``runtime.engine.sync_engine`` records every statement
the database driver is handed (an ``executemany`` counts once, with its row count). On SQLite
the driver's implicit BEGIN/COMMIT/ROLLBACK are not statements and are not counted. As context
it also counts aiosqlite thread hops (each one a round trip to the driver's worker thread),
which is what a cold verify's latency is made of.

Targets: cold verify 1; warm verify 0; unknown key 1 the first time and 0 again; malformed key
0; no statement and no write during 10,000 warm verifies; the write-behind flush after them is
one batched statement.

    python bench/sql_per_verify.py [--quick] [--keys K] [--warm N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite.core
from _common import BenchSecrets, Results, header, sqlite_url
from sqlalchemy import event, text

from keyrack.domain import keys as keyformat
from keyrack.domain.verification import Outcome
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@dataclass
class Statement:
    """One statement as the driver received it (no parameters are kept: they hold digests)."""

    sql: str
    executemany: bool
    rows: int

    @property
    def is_write(self) -> bool:
        """Whether it changes data."""
        return self.sql.lstrip().upper().startswith(WRITE_VERBS)

    def summary(self) -> str:
        """First words of the SQL, and the batch size of an executemany."""
        words = " ".join(self.sql.split())[:70]
        return f"{words}…" + (f" [executemany, {self.rows} rows]" if self.executemany else "")


@dataclass
class Recorder:
    """Statements and aiosqlite thread hops seen while a ``window`` is open."""

    statements: list[Statement] = field(default_factory=list)
    hops: int = 0
    active: bool = False

    def on_execute(
        self,
        _conn: Any,  # SQLAlchemy's event signature
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        """``before_cursor_execute`` listener."""
        if self.active:
            rows = len(parameters) if executemany else 1
            self.statements.append(Statement(statement, executemany, rows))

    @contextmanager
    def window(self) -> Iterator[list[Statement]]:
        """Record into a fresh list for the duration of the block."""
        self.statements = []
        self.hops = 0
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def count_hops(recorder: Recorder) -> bool:
    """Count aiosqlite worker-thread round trips (diagnostic only; private API, so optional)."""
    original = getattr(aiosqlite.core.Connection, "_execute", None)
    if original is None:
        return False

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if recorder.active:
            recorder.hops += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]  # diagnostic
    return True


@dataclass
class CaseTable:
    """The RESULT lines and the printed table of cases."""

    hops_counted: bool
    results: Results = field(default_factory=Results)
    rows: list[tuple[str, int, int, int | None]] = field(default_factory=list)

    def record(
        self, name: str, statements: list[Statement], target: int, hops: int, ok: bool | None = None
    ) -> None:
        """One case: its statements against the target (``ok`` overrides the comparison)."""
        measured = len(statements)
        passed = measured == target if ok is None else ok
        self.results.add(name, str(measured), str(target), passed)
        self.rows.append((name, measured, target, hops if self.hops_counted else None))
        distinct = dict.fromkeys(statement.summary() for statement in statements)
        for summary in distinct:
            times = sum(1 for statement in statements if statement.summary() == summary)
            print(f"    {name}: {'' if times == 1 else f'{times} x '}{summary}")

    def print(self) -> None:
        """The table of every case."""
        print(f"{'case':<40} {'statements':>10} {'target':>7} {'aiosqlite hops':>15}")
        for name, measured, target, hops in self.rows:
            print(f"{name:<40} {measured:>10} {target:>7} {'' if hops is None else hops:>15}")


async def single_cases(runtime: Runtime, recorder: Recorder, table: CaseTable, first: str) -> None:
    """One verify per case, in an order where each case finds the cache as its name says."""
    unknown = keyformat.generate("sk", entropy=os.urandom(keyformat.RANDOM_BYTES))
    bad_checksum = unknown[:-1] + ("A" if unknown[-1] != "A" else "B")
    valid, missing = Outcome.VALID, Outcome.NOT_FOUND
    cases = (
        ("cold_verify", first, valid, 1),
        ("warm_verify", first, valid, 0),
        ("unknown_key_first", unknown, missing, 1),
        ("unknown_key_again", unknown, missing, 0),
        ("malformed_key", "not-a-key", missing, 0),
        ("bad_checksum_key", bad_checksum, missing, 0),
        ("empty_key", "", missing, 0),
    )
    for name, presented, expected, target in cases:
        with recorder.window() as seen:
            result = await runtime.verifier.verify(presented)
        if result.outcome is not expected:
            raise SystemExit(f"{name}: answered {result.outcome}, expected {expected}")
        table.record(name, seen, target, recorder.hops)


async def batch_cases(
    runtime: Runtime, recorder: Recorder, table: CaseTable, secrets: list[str], n_warm: int
) -> None:
    """Cold-load the other keys, run the warm verifies, then flush the write-behind once."""
    others = secrets[1:]
    with recorder.window() as seen:
        for secret in others:
            if (await runtime.verifier.verify(secret)).outcome is not Outcome.VALID:
                raise SystemExit("a cold verify did not answer VALID")
    table.record(f"cold_load_{len(others)}_keys", seen, len(others), recorder.hops)

    pending = runtime.writes.pending
    with recorder.window() as seen:
        for index in range(n_warm):
            await runtime.verifier.verify(secrets[index % len(secrets)])
    table.record(f"statements_during_{n_warm}_warm", seen, 0, recorder.hops)
    table.record(f"writes_during_{n_warm}_warm", [s for s in seen if s.is_write], 0, 0)

    with recorder.window() as seen:
        written = await runtime.writes.flush()
    write_rows = sum(s.rows for s in seen if s.is_write)
    batched = len(seen) == 1 and seen[0].executemany and write_rows == pending
    table.record(f"flush_statements_for_{written}_rows", seen, 1, recorder.hops, ok=batched)
    async with runtime.engine.connect() as conn:
        used = await conn.scalar(
            text("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL")
        )
    print(
        f"  write-behind: {pending} pending before the flush, {written} rows written, "
        f"{used} keys now have last_used_at"
    )


async def run(n_keys: int, n_warm: int) -> Results:
    """Set up, count, and return the RESULT lines."""
    bench = BenchSecrets()
    recorder = Recorder()
    table = CaseTable(hops_counted=count_hops(recorder))
    with tempfile.TemporaryDirectory(prefix="keyrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        runtime: Runtime = await open_runtime(bench.settings(sqlite_url(tmp), tmp))
        event.listen(runtime.engine.sync_engine, "before_cursor_execute", recorder.on_execute)
        try:
            tenant = await runtime.tenants.create(OPERATOR, name="Bench", key_prefix="sk")
            secrets = [
                (await runtime.keys.create(OPERATOR, tenant.id, NewKey(name=f"k{i}")))[1]
                for i in range(n_keys)
            ]
            # Use the pool's connection once more, so the first cold verify is not also the
            # connection's first use.
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            await single_cases(runtime, recorder, table, secrets[0])
            await batch_cases(runtime, recorder, table, secrets, n_warm)
        finally:
            await runtime.close()
    table.print()
    return table.results


def main() -> int:
    """Parse flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run")
    parser.add_argument("--keys", type=int, default=None, help="keys created (default 50)")
    parser.add_argument("--warm", type=int, default=10_000, help="warm verifies counted")
    args = parser.parse_args()
    n_keys = args.keys or (10 if args.quick else 50)
    header("sql_per_verify: statements per verify", args.quick)
    return asyncio.run(run(n_keys, args.warm)).emit()


if __name__ == "__main__":
    raise SystemExit(main())
