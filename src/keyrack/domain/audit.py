"""Audit events: who did what, to what, when and from where (DESIGN.md §2, §8, §11).

An event never carries a secret value: ``changed`` lists field *names* only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

SUCCESS: Final = "success"


@dataclass(frozen=True, slots=True)
class Ref:
    """A typed reference to an actor or a target (``{"type", "id"}`` on the wire)."""

    type: str
    id: str


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Where a management request came from, as the HTTP edge saw it."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


NO_ORIGIN: Final = RequestOrigin()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded management action. ``tenant_id`` ``None`` is the platform's own chain."""

    tenant_id: str | None
    at: datetime
    action: str
    actor: Ref
    target: Ref | None
    impersonator: Ref | None = None
    origin: RequestOrigin = NO_ORIGIN
    outcome: str = SUCCESS
    changed: tuple[str, ...] = ()
