"""Builders of domain objects for repository tests: valid by default, deterministic ids."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from keyrack.domain import ids
from keyrack.domain.models import (
    NO_LIMITS,
    ApiKey,
    Identity,
    KeySecret,
    KeyStatus,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.permissions import Permission

EPOCH = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


class Build:
    """Makes tenants, keys, secrets and accounts whose ids sort in creation order."""

    def __init__(self, *, at: datetime = EPOCH) -> None:
        self.at = at
        self._counter = itertools.count(1)

    def id(self, prefix: str) -> str:
        """A fresh id; later ids sort after earlier ones."""
        n = next(self._counter)
        now_ms = int(self.at.timestamp() * 1000) + n
        return ids.new_id(prefix, now_ms=now_ms, entropy=n.to_bytes(ids.ENTROPY_BYTES, "big"))

    def tenant(self, *, name: str = "Acme", slug: str | None = None) -> Tenant:
        tenant_id = self.id("ten")
        return Tenant(
            id=tenant_id,
            name=name,
            slug=slug or f"acme-{tenant_id[-8:].lower()}",
            key_prefix="sk_live",
            created_at=self.at,
            updated_at=self.at,
        )

    def key(self, tenant_id: str, **changes: object) -> ApiKey:
        key = ApiKey(
            id=self.id("key"),
            tenant_id=tenant_id,
            name="checkout",
            description=None,
            start="sk_live_AbCd",
            status=KeyStatus.ACTIVE,
            expires_at=None,
            owner_id=None,
            identity_id=None,
            meta={},
            permissions=(),
            roles=(),
            system=False,
            recoverable=False,
            created_at=self.at,
            updated_at=self.at,
            last_used_at=None,
        )
        return replace(key, **changes)  # type: ignore[arg-type]  # test-only field overrides

    def identity(self, tenant_id: str, *, external_id: str = "cus_1") -> Identity:
        return Identity(
            id=self.id("idn"),
            tenant_id=tenant_id,
            external_id=external_id,
            meta={},
            limits=NO_LIMITS,
            created_at=self.at,
            updated_at=self.at,
        )

    def secret(self, key: ApiKey, *, expires_at: datetime | None = None) -> KeySecret:
        secret_id = self.id("sec")
        return KeySecret(
            id=secret_id,
            key_id=key.id,
            tenant_id=key.tenant_id,
            digest=digest_of(secret_id),
            pepper_version=1,
            start=key.start,
            created_at=self.at,
            expires_at=expires_at,
        )

    def account(self, tenant_id: str | None) -> ServiceAccount:
        return ServiceAccount(
            id=self.id("sa"),
            tenant_id=tenant_id,
            name="deployer",
            permissions=frozenset({Permission.KEYS_READ, Permission.KEYS_WRITE}),
            is_bootstrap=False,
            created_at=self.at,
        )

    def root_key(self, account: ServiceAccount) -> RootKey:
        return RootKey(
            id=self.id("rk"),
            service_account_id=account.id,
            tenant_id=account.tenant_id,
            start="krroot_AbCd",
            created_at=self.at,
            revoked_at=None,
        )

    def later(self, seconds: float) -> datetime:
        return self.at + timedelta(seconds=seconds)


def digest_of(label: str) -> bytes:
    """A 32-byte stand-in digest, unique per label."""
    return hashlib.sha256(label.encode()).digest()
