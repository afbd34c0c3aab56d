"""Verify wire models (DESIGN.md §4, §11).

Unknown fields are refused (422) rather than silently ignored, so a typo in a fact the key's
policy depends on cannot turn into a ``VALID`` answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictStr

from keyrack.domain.verification import Outcome, VerifyFacts
from keyrack.schemas.common import RequestModel, ShortText
from keyrack.schemas.limits import Units

Fact = Annotated[StrictStr, Field(max_length=2048)]


class RateLimitCost(RequestModel):
    """The cost charged to one named rate limit, instead of the request's ``cost``."""

    name: ShortText
    cost: Units


class VerifyRequest(RequestModel):
    """The presented key and what the caller knows about the request.

    Any string is accepted as ``key`` (a non-key answers ``NOT_FOUND``). A key whose policy
    needs ``ip``, ``origin``, ``endpoint`` or ``tls`` answers ``FORBIDDEN`` when it is missing.
    """

    key: StrictStr
    permissions: Annotated[StrictStr, Field(max_length=1000)] | None = None
    endpoint: Fact | None = None
    ip: Annotated[StrictStr, Field(max_length=100)] | None = None
    origin: Fact | None = None
    tls: StrictBool | None = None
    cost: Units = 1
    tokens: Units | None = None
    spend: Units = 0
    ratelimits: Annotated[list[RateLimitCost], Field(max_length=32)] = Field(default_factory=list)
    tags: Annotated[list[Annotated[StrictStr, Field(max_length=255)]], Field(max_length=32)] = (
        Field(default_factory=list)
    )

    def facts(self) -> VerifyFacts:
        """The request facts for the verify service."""
        return VerifyFacts(
            permissions=self.permissions,
            endpoint=self.endpoint,
            ip=self.ip,
            origin=self.origin,
            tls=self.tls,
            tokens=self.tokens,
            cost=self.cost,
            ratelimits=tuple((item.name, item.cost) for item in self.ratelimits),
            spend=self.spend,
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
    reason: str | None = None
    """Why a ``FORBIDDEN`` or ``TOKENS_EXCEEDED`` answer was given (``ip_not_allowed`` …)."""
