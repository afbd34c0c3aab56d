"""Counts the SQL statements an engine sends, by listening to ``before_cursor_execute``."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_READS = ("SELECT", "PRAGMA", "SHOW", "WITH")


class StatementLog:
    """Records every statement and commit of ``engine`` while inside ``with``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.statements: list[str] = []
        self.executemany: list[bool] = []
        self.commits = 0

    def _on_execute(self, **event: Any) -> None:  # SQLAlchemy's named event arguments
        self.statements.append(event["statement"])
        self.executemany.append(event["executemany"])

    def _on_commit(self, **event: Any) -> None:
        self.commits += 1

    def __enter__(self) -> StatementLog:
        event.listen(self._engine, "before_cursor_execute", self._on_execute, named=True)
        event.listen(self._engine, "commit", self._on_commit, named=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_execute)
        event.remove(self._engine, "commit", self._on_commit)

    @property
    def count(self) -> int:
        """How many statements ran."""
        return len(self.statements)

    def writes(self) -> list[str]:
        """The statements that are not plain reads."""
        return [s for s in self.statements if not s.lstrip().upper().startswith(_READS)]

    def reset(self) -> None:
        """Forget what was recorded so far."""
        self.statements.clear()
        self.executemany.clear()
        self.commits = 0
