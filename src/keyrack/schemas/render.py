"""Fast rendering of verify answers as plain dicts (the hot path skips pydantic on output)."""

from __future__ import annotations

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
        }
    return {
        "valid": result.valid,
        "code": result.outcome.value,
        "key_id": record.key_id,
        "tenant_id": record.tenant_id,
        "identity": None,
        "owner_id": record.owner_id,
        "name": record.name,
        "meta": record.meta,
        "permissions": record.permissions,
        "roles": record.roles,
        "expires_at": record.expires_at,
        "credits": None,
        "budget": None,
        "ratelimits": _EMPTY,
        "lease_id": None,
    }
