"""Fakes implementing keyrack's ports, for fast tests without patching our own modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    at: float = 1_800_000_000.0  # 2027-01-15T08:00:00Z

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds
