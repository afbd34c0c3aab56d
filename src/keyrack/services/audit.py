"""Building audit events from the caller and the change (the log itself is ``ports.AuditLog``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from keyrack.domain.audit import AuditEvent, Ref
from keyrack.domain.permissions import Principal


def event(
    actor: Principal,
    action: str,
    *,
    tenant_id: str | None,
    target: Ref | None,
    at: datetime,
    changed: Iterable[str] = (),
    outcome: str = "success",
) -> AuditEvent:
    """An event of ``actor`` doing ``action``, attributed to its impersonator too if any.

    Args:
        actor: The caller; its ``impersonator`` and request ``origin`` are recorded.
        action: ``resource.verb`` (DESIGN.md §11).
        tenant_id: The tenant's chain, or ``None`` for the platform's.
        target: What the action was done to.
        at: When.
        changed: Names of the fields the action changed (never their values).
        outcome: ``success`` or ``failure``.
    """
    return AuditEvent(
        tenant_id=tenant_id,
        at=at,
        action=action,
        actor=actor.ref,
        target=target,
        impersonator=actor.impersonator,
        origin=actor.origin,
        outcome=outcome,
        changed=tuple(sorted(set(changed))),
    )
