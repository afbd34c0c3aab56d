"""Domain objects: frozen values, no ORM and no wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from keyrack.domain.permissions import Permission

JsonObject = dict[str, object]

MAX_NAME_LENGTH: Final = 255
MAX_DESCRIPTION_LENGTH: Final = 1024
MAX_META_BYTES: Final = 16 * 1024
MAX_META_DEPTH: Final = 8


class KeyStatus(StrEnum):
    """Lifecycle state of an API key; ``revoked`` is final."""

    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Tenant:
    """The isolation boundary: every tenant-owned row carries its id."""

    id: str
    name: str
    slug: str
    key_prefix: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An end-user API key as management sees it (never its secret or digest)."""

    id: str
    tenant_id: str
    name: str
    description: str | None
    start: str
    status: KeyStatus
    expires_at: datetime | None
    owner_id: str | None
    identity_id: str | None
    meta: JsonObject
    permissions: tuple[str, ...]
    roles: tuple[str, ...]
    system: bool
    recoverable: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class KeySecret:
    """One secret of a key: its digest, pepper version and end of validity (rotation grace)."""

    id: str
    key_id: str
    tenant_id: str
    digest: bytes = field(repr=False)
    pepper_version: int
    start: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Everything verify needs about one presented secret, loaded in one query and cached.

    Times are epoch seconds so the hot path compares floats. ``valid_until`` is the earlier of
    the key's expiry and the secret's rotation grace end; ``expired_by_rotation`` tells which.
    """

    key_id: str
    tenant_id: str
    secret_id: str
    pepper_version: int
    status: KeyStatus
    valid_until: float | None
    name: str
    owner_id: str | None
    identity_id: str | None
    meta: JsonObject
    permissions: tuple[str, ...]
    roles: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A machine principal with explicit management permissions, for one tenant or the platform."""

    id: str
    tenant_id: str | None
    name: str
    permissions: frozenset[Permission]
    is_bootstrap: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RootKey:
    """A credential of a service account for the management API (never its secret)."""

    id: str
    service_account_id: str
    tenant_id: str | None
    start: str
    created_at: datetime
    revoked_at: datetime | None
