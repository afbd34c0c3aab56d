"""Shared helpers of the benchmark scripts (never imported by src/ or tests/).

Each script is run as ``python bench/<name>.py``, so this module is imported as ``_common``.
"""

from __future__ import annotations

import base64
import gc
import os
import secrets
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyrack.config import Settings


def fresh_secret_list() -> str:
    """A one-version ``1:base64`` list, as ``KEYRACK_PEPPERS`` and ``KEYRACK_MASTER_KEYS`` take."""
    return f"1:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@dataclass(frozen=True)
class BenchSecrets:
    """Peppers and master keys of one benchmark run, built like ``tests/conftest.py`` does."""

    peppers: str = field(default_factory=fresh_secret_list)
    master_keys: str = field(default_factory=fresh_secret_list)

    @property
    def pepper_bytes(self) -> bytes:
        """The current (only) pepper, decoded."""
        return base64.b64decode(self.peppers.partition(":")[2])

    def settings(self, database_url: str, tmp: Path, **overrides: Any) -> Settings:
        """Settings on ``database_url`` with these secrets and no secrets file."""
        values: dict[str, Any] = {
            "database_url": database_url,
            "peppers": self.peppers,
            "master_keys": self.master_keys,
            "secrets_file": tmp / "absent.secrets",
            "flush_interval_seconds": 3600,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def env(self, database_url: str, tmp: Path) -> dict[str, str]:
        """``KEYRACK_*`` variables for a server subprocess on the same database and secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRACK_")}
        env.update(
            {
                "KEYRACK_DATABASE_URL": database_url,
                "KEYRACK_PEPPERS": self.peppers,
                "KEYRACK_MASTER_KEYS": self.master_keys,
                "KEYRACK_SECRETS_FILE": str(tmp / "absent.secrets"),
                "KEYRACK_LOG_LEVEL": "WARNING",
            }
        )
        return env


def sqlite_url(tmp: Path, name: str = "keyrack.db") -> str:
    """An aiosqlite URL for a database file in ``tmp``."""
    return f"sqlite+aiosqlite:///{tmp / name}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the cyclic collector out of a timed section."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def median(values: list[float]) -> float:
    """The median (a thin alias so every script reads the same)."""
    return statistics.median(values)


def us(ns: float) -> str:
    """Format nanoseconds as microseconds."""
    return f"{ns / 1000:.2f} µs"


def spread(values: list[float]) -> str:
    """``min … max`` of per-round figures in µs, to show the noise."""
    return f"rounds {min(values) / 1000:.2f} … {max(values) / 1000:.2f} µs"


@dataclass
class Results:
    """Collects the RESULT lines, printed last and all together."""

    lines: list[str] = field(default_factory=list)
    missed: int = 0

    def add(self, name: str, measured: str, target: str, ok: bool) -> None:
        """Record one target's outcome."""
        self.lines.append(f"RESULT {name}: {measured} (target {target}) {'PASS' if ok else 'MISS'}")
        if not ok:
            self.missed += 1

    def emit(self) -> int:
        """Print every RESULT line, last; the exit status is 0 even on a MISS (figures, not
        a test)."""
        sys.stdout.flush()
        for line in self.lines:
            print(line)
        return 0


def header(title: str, quick: bool) -> None:
    """Print what runs and where."""
    mode = "quick (smoke)" if quick else "full"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"== {title} [{mode}] python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"load average {load} (other work on the machine skews every figure)"
    )
