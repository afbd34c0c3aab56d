"""Verify wire models (DESIGN.md §4).

Only the request facts that verify enforces today are accepted: a field the server would ignore
(a permission query before permissions are checked, say) is refused as unknown rather than
silently answered ``VALID``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictStr

from keyrack.domain.verification import Outcome
from keyrack.schemas.common import RequestModel


class VerifyRequest(RequestModel):
    """The presented key; any string is accepted and a non-key answers ``NOT_FOUND``."""

    key: StrictStr
    tags: Annotated[list[Annotated[StrictStr, Field(max_length=255)]], Field(max_length=32)] = (
        Field(default_factory=list)
    )


class IdentityRead(BaseModel):
    """The identity a key belongs to."""

    id: str
    external_id: str
    meta: dict[str, object]


class CreditsRead(BaseModel):
    """Credits left after this request."""

    remaining: int | None


class RateLimitRead(BaseModel):
    """State of one named rate limit."""

    name: str
    limit: int
    remaining: int
    reset_at: datetime


class BudgetRead(BaseModel):
    """Budget left after this request."""

    remaining: int
    soft_limit_reached: bool


class VerifyResponse(BaseModel):
    """A verify answer: always HTTP 200 for an outcome about the key."""

    valid: bool
    code: Outcome
    key_id: str | None
    tenant_id: str | None
    identity: IdentityRead | None
    owner_id: str | None
    name: str | None
    meta: dict[str, object] | None
    permissions: list[str]
    roles: list[str]
    expires_at: datetime | None
    credits: CreditsRead | None
    budget: BudgetRead | None
    ratelimits: list[RateLimitRead]
    lease_id: str | None
