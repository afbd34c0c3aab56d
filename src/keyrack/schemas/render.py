"""Fast rendering of verify answers as plain dicts (the hot path skips pydantic on output)."""

from __future__ import annotations

from datetime import UTC, datetime

from keyrack.domain.limits import LimitAnswer
from keyrack.domain.models import KeyRecord
from keyrack.domain.verification import VerifyResult

_EMPTY: list[str] = []


def verify_body(result: VerifyResult) -> dict[str, object]:
    """The ``VerifyResponse`` shape of ``result`` as a dict ready for a JSON encoder."""
    record = result.record
    if record is None:
        return {
            "valid": False,
            "code": result.outcome.value,
            "key_id": None,
            "tenant_id": None,
            "identity": None,
            "owner_id": None,
            "name": None,
            "meta": None,
            "permissions": _EMPTY,
            "roles": _EMPTY,
            "expires_at": None,
            "credits": None,
            "budget": None,
            "ratelimits": _EMPTY,
            "lease_id": None,
            "reason": None,
        }
    identity = record.identity
    body: dict[str, object] = {
        "valid": result.valid,
        "code": result.outcome.value,
        "key_id": record.key_id,
        "tenant_id": record.tenant_id,
        "identity": None
        if identity is None
        else {"id": identity.id, "external_id": identity.external_id, "meta": identity.meta},
        "owner_id": record.owner_id,
        "name": record.name,
        "meta": record.meta,
        "permissions": _granted(record),
        "roles": record.roles,
        "expires_at": record.expires_at,
        "credits": None,
        "budget": None,
        "ratelimits": _EMPTY,
        "lease_id": None,
        "reason": result.reason,
    }
    if result.limits is not None:
        _limits(body, record, result.limits)
    return body


def _granted(record: KeyRecord) -> tuple[str, ...] | list[str]:
    """Every permission the key holds (direct and through roles), sorted."""
    if not record.roles:
        return record.permissions
    return sorted(record.granted)


def _limits(body: dict[str, object], record: KeyRecord, answer: LimitAnswer) -> None:
    credits = answer.credits
    if credits is not None:
        body["credits"] = {"remaining": credits.remaining}
    plan = record.plan
    budget = answer.budget
    if budget is not None and plan is not None and plan.budget is not None:
        cap = plan.budget
        body["budget"] = {
            "remaining": max(cap.limit - budget.spent, 0),
            "soft_limit_reached": budget.spent >= cap.soft_limit,
        }
    if answer.rates:
        body["ratelimits"] = [
            {
                "name": rate.name,
                "limit": rate.limit,
                "remaining": rate.remaining,
                "reset_at": datetime.fromtimestamp(rate.reset_at_ms / 1000, UTC),
            }
            for rate in answer.rates
        ]
    body["lease_id"] = answer.lease_id
