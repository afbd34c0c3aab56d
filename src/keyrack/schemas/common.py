"""Shapes shared by every resource: pages and problems."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from keyrack.domain import validation

T = TypeVar("T")

Name = Annotated[StrictStr, AfterValidator(validation.check_name)]
Description = Annotated[StrictStr, AfterValidator(validation.check_description)]
Slug = Annotated[StrictStr, AfterValidator(validation.check_slug)]
Meta = Annotated[dict[str, object], AfterValidator(validation.check_meta)]
ShortText = Annotated[StrictStr, Field(min_length=1, max_length=255)]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a list: pass ``next_cursor`` back as ``?cursor=`` for the next page."""

    items: list[T]
    next_cursor: str | None


class Problem(BaseModel):
    """An RFC 9457 problem body; ``code`` is stable and machine-readable."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
