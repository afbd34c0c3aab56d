"""The API key lifecycle: create, read, list, update, rotate, revoke, disable, enable, delete."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final, Literal

from keyrack.domain import ids
from keyrack.domain import keys as keyformat
from keyrack.domain.audit import Ref
from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.hashing import Peppers
from keyrack.domain.limits import CreditState, key_slot
from keyrack.domain.models import (
    NO_LIMITS,
    NO_POLICY,
    ApiKey,
    JsonObject,
    KeyRecord,
    KeySecret,
    KeyStatus,
    Limits,
)
from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.policy import KeyPolicy, build_policy
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import (
    ConcurrentUpdate,
    IdentityNotFound,
    InvalidInput,
    KeyAlreadyRevoked,
    KeyNotFound,
    PermissionDenied,
    SystemKeyManaged,
    TenantNotFound,
)
from keyrack.services import inputs
from keyrack.services.audit import event
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    KeyFilter,
    KeyRepository,
    LimitStore,
    UnitOfWork,
    UnitOfWorkFactory,
)
from keyrack.services.rbac import resolve_key_grants

logger = logging.getLogger(__name__)

MAX_GRACE_SECONDS: Final = 31 * 24 * 3600


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a field a PATCH leaves as it is (distinct from an explicit ``None``)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """What a caller asks for when creating a key (already bounds-checked at the edge)."""

    name: str
    description: str | None = None
    expires_at: datetime | None = None
    owner_id: str | None = None
    meta: JsonObject = field(default_factory=dict)
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    identity_id: str | None = None
    policy: KeyPolicy = NO_POLICY
    limits: Limits = NO_LIMITS


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """A partial update; ``UNSET`` fields stay as they are."""

    name: str | _Unset = UNSET
    description: str | _Unset | None = UNSET
    expires_at: datetime | _Unset | None = UNSET
    owner_id: str | _Unset | None = UNSET
    meta: JsonObject | _Unset = UNSET
    permissions: tuple[str, ...] | _Unset = UNSET
    roles: tuple[str, ...] | _Unset = UNSET
    identity_id: str | _Unset | None = UNSET
    ip_allowlist: tuple[str, ...] | _Unset = UNSET
    allowed_origins: tuple[str, ...] | _Unset = UNSET
    allowed_endpoints: tuple[str, ...] | _Unset = UNSET
    blocked_endpoints: tuple[str, ...] | _Unset = UNSET
    require_tls: bool | _Unset = UNSET
    max_tokens_per_request: int | _Unset | None = UNSET
    rate_limits: tuple[RateLimit, ...] | _Unset = UNSET
    credits: Credits | _Unset | None = UNSET
    """A new balance is an explicit set: it replaces the live counter."""
    budget: Budget | _Unset | None = UNSET
    """A new budget configuration keeps what the current period has spent."""
    max_concurrency: int | _Unset | None = UNSET
    lease_ttl_seconds: int | _Unset = UNSET


_POLICY_FIELDS: Final = (
    "ip_allowlist",
    "allowed_origins",
    "allowed_endpoints",
    "blocked_endpoints",
    "require_tls",
    "max_tokens_per_request",
)
_LIMIT_FIELDS: Final = ("rate_limits", "credits", "budget", "max_concurrency", "lease_ttl_seconds")


StatusAction = Literal["revoke", "disable", "enable"]


def _merge_policy_and_limits(key: ApiKey, values: dict[str, object], *, now_ms: int) -> None:
    """Fold the policy and limit fields of a PATCH into a new ``policy`` and ``limits``.

    A new credits balance is an explicit set (its version goes up, so it replaces the live
    counter in the limit store); a new budget configuration keeps what its period has spent.

    Raises:
        InvalidInput: The merged policy or limits are invalid.
    """
    policy_updates: dict[str, Any] = {
        name: values.pop(name) for name in _POLICY_FIELDS if name in values
    }
    if policy_updates:
        merged: dict[str, Any] = {name: getattr(key.policy, name) for name in _POLICY_FIELDS}
        merged.update(policy_updates)
        values["policy"] = build_policy(**merged)
    limit_updates = {name: values.pop(name) for name in _LIMIT_FIELDS if name in values}
    if not limit_updates:
        return
    old = key.limits
    limits = replace(old, **limit_updates)  # type: ignore[arg-type]  # each value keeps its field's type
    if "credits" in limit_updates:
        limits = replace(limits, credits_version=old.credits_version + 1)
    if limits.budget is not None and old.budget is not None and "budget" in limit_updates:
        limits = replace(
            limits,
            budget=replace(
                limits.budget, spent=old.budget.spent, period_start_ms=old.budget.period_start_ms
            ),
        )
    values["limits"] = inputs.limits(limits, now_ms=now_ms if "credits" in limit_updates else None)


def _checked_changes(changes: KeyChanges) -> KeyChanges:
    """Apply the input bounds to the fields a PATCH sets."""
    updates: dict[str, object] = {}
    if isinstance(changes.name, str):
        updates["name"] = inputs.name(changes.name)
    if isinstance(changes.description, str):
        updates["description"] = inputs.description(changes.description)
    if isinstance(changes.owner_id, str):
        updates["owner_id"] = inputs.name(changes.owner_id, field="owner_id")
    if isinstance(changes.meta, dict):
        updates["meta"] = inputs.meta(changes.meta)
    if isinstance(changes.permissions, tuple):
        updates["permissions"] = inputs.slugs(changes.permissions, field="permissions")
    if isinstance(changes.roles, tuple):
        updates["roles"] = inputs.slugs(changes.roles, field="roles")
    return replace(changes, **updates)  # type: ignore[arg-type]  # each value keeps its field's type


def new_secret(
    peppers: Peppers,
    entropy: Entropy,
    *,
    key_id: str,
    tenant_id: str,
    prefix: str,
    secret_id: str,
    now: float,
) -> tuple[KeySecret, str]:
    """A fresh key secret in the tenant's prefix: its stored record and its plaintext."""
    plaintext = keyformat.generate(prefix, entropy=entropy(keyformat.RANDOM_BYTES))
    secret = KeySecret(
        id=secret_id,
        key_id=key_id,
        tenant_id=tenant_id,
        digest=peppers.digest(plaintext),
        pepper_version=peppers.current_version,
        start=keyformat.display_start(plaintext),
        created_at=to_datetime(now),
        expires_at=None,
    )
    return secret, plaintext


class KeyService:
    """Management of end-user API keys; every change drops the key from the verify cache."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        peppers: Peppers,
        clock: Clock,
        entropy: Entropy,
        cache: Cache[KeyRecord],
        limits: LimitStore,
    ) -> None:
        self._uow = uow
        self._limits = limits
        self._peppers = peppers
        self._clock = clock
        self._entropy = entropy
        self._cache = cache
        # Keys with a rotation in flight in this process: an overlapping rotation of the same
        # key answers 409 at once instead of racing (across processes the row lock and the
        # version check decide).
        self._rotating: set[str] = set()

    def _new_id(self, prefix: str, now: float) -> str:
        return ids.new_id(prefix, now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES))

    def _new_secret(
        self, *, key_id: str, tenant_id: str, prefix: str, now: float
    ) -> tuple[KeySecret, str]:
        return new_secret(
            self._peppers,
            self._entropy,
            key_id=key_id,
            tenant_id=tenant_id,
            prefix=prefix,
            secret_id=self._new_id("sec", now),
            now=now,
        )

    @staticmethod
    async def _tenant_prefix(uow: UnitOfWork, tenant_id: str) -> str:
        tenant = await uow.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound
        return tenant.key_prefix

    @staticmethod
    def _check_visible(actor: Principal, tenant_id: str, key: ApiKey | None) -> ApiKey:
        """The key, unless it is missing or hidden from the caller (both read as not found).

        A member sees only its own keys, and never its system keys.
        """
        owner = actor.own_keys_only(tenant_id)
        if key is None or (owner is not None and (key.owner_id != owner or key.system)):
            raise KeyNotFound
        return key

    async def _existing(
        self, actor: Principal, repo: KeyRepository, key_id: str, *, for_update: bool = False
    ) -> ApiKey:
        return self._check_visible(
            actor, repo.tenant_id, await repo.get(key_id, for_update=for_update)
        )

    @staticmethod
    async def _audit(
        uow: UnitOfWork,
        actor: Principal,
        action: str,
        key: ApiKey,
        *,
        at: datetime,
        changed: tuple[str, ...] = (),
    ) -> None:
        await uow.audit.record(
            event(
                actor,
                action,
                tenant_id=key.tenant_id,
                target=Ref("key", key.id),
                at=at,
                changed=changed,
            )
        )

    async def _check_refs(
        self,
        uow: UnitOfWork,
        tenant_id: str,
        identity_id: str | None,
        grants: NewKey | KeyChanges,
        now: float,
    ) -> None:
        """The identity must exist in the tenant; permissions are created, roles must exist."""
        if identity_id is not None and await uow.identities(tenant_id).get(identity_id) is None:
            raise IdentityNotFound
        permissions = grants.permissions
        roles = grants.roles
        if isinstance(permissions, tuple) or isinstance(roles, tuple):
            await resolve_key_grants(
                uow,
                tenant_id,
                permissions=permissions if isinstance(permissions, tuple) else (),
                roles=roles if isinstance(roles, tuple) else (),
                now=to_datetime(now),
                new_id=lambda prefix: self._new_id(prefix, now),
            )

    def _check_expiry(self, expires_at: datetime | None, now: float) -> None:
        if expires_at is not None and expires_at.timestamp() <= now:
            raise InvalidInput("expires_at must be in the future")

    async def create(self, actor: Principal, tenant_id: str, spec: NewKey) -> tuple[ApiKey, str]:
        """Create a key and return it with its secret, which is never retrievable again.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``, or is a member creating a key
                for someone else.
            InvalidInput: ``expires_at`` is not in the future.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id, own=True)
        owner = actor.own_keys_only(tenant_id)
        if owner is not None:
            if spec.owner_id not in (None, owner):
                raise PermissionDenied("members create keys only for themselves")
            spec = replace(spec, owner_id=owner)
        now = self._clock.now()
        self._check_expiry(spec.expires_at, now)
        spec = replace(
            spec,
            name=inputs.name(spec.name),
            description=inputs.description(spec.description),
            owner_id=None
            if spec.owner_id is None
            else inputs.name(spec.owner_id, field="owner_id"),
            meta=inputs.meta(spec.meta),
            permissions=inputs.slugs(spec.permissions, field="permissions"),
            roles=inputs.slugs(spec.roles, field="roles"),
            limits=inputs.limits(spec.limits, now_ms=int(now * 1000)),
        )
        async with self._uow() as uow:
            prefix = await self._tenant_prefix(uow, tenant_id)
            await self._check_refs(uow, tenant_id, spec.identity_id, spec, now)
            key_id = self._new_id("key", now)
            secret, plaintext = self._new_secret(
                key_id=key_id, tenant_id=tenant_id, prefix=prefix, now=now
            )
            created = to_datetime(now)
            key = ApiKey(
                id=key_id,
                tenant_id=tenant_id,
                name=spec.name,
                description=spec.description,
                start=secret.start,
                status=KeyStatus.ACTIVE,
                expires_at=spec.expires_at,
                owner_id=spec.owner_id,
                identity_id=spec.identity_id,
                meta=spec.meta,
                permissions=spec.permissions,
                roles=spec.roles,
                system=False,
                recoverable=False,
                created_at=created,
                updated_at=created,
                last_used_at=None,
                policy=spec.policy,
                limits=spec.limits,
            )
            await uow.keys(tenant_id).add(key, secret)
            await self._audit(uow, actor, "key.created", key, at=created)
            await uow.commit()
        logger.info("key.created", extra={"tenant_id": tenant_id, "key_id": key_id})
        return key, plaintext

    async def get(self, actor: Principal, tenant_id: str, key_id: str) -> ApiKey:
        """One key of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            KeyNotFound: No such key in this tenant.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id, own=True)
        async with self._uow() as uow:
            await self._tenant_prefix(uow, tenant_id)
            return await self._existing(actor, uow.keys(tenant_id), key_id)

    async def list(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        where: KeyFilter | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[ApiKey]:
        """A page of the tenant's keys, ordered by creation.

        A member sees only its own keys and never its system keys, whatever ``where`` asks.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id, own=True)
        where = where or KeyFilter()
        owner = actor.own_keys_only(tenant_id)
        if owner is not None:
            where = replace(where, owner_id=owner, include_system=False)
        async with self._uow() as uow:
            await self._tenant_prefix(uow, tenant_id)
            repo = uow.keys(tenant_id)

            async def fetch(n: int, after: str | None) -> list[ApiKey]:
                return await repo.list(limit=n, after=after, where=where)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="key")

    async def update(
        self, actor: Principal, tenant_id: str, key_id: str, changes: KeyChanges
    ) -> ApiKey:
        """Apply a partial update.

        Raises:
            KeyNotFound: No such key in this tenant.
            ConcurrentUpdate: Another change to the key committed first.
            InvalidInput: ``expires_at`` is not in the future.
            PermissionDenied: A member giving its key to someone else.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id, own=True)
        owner = actor.own_keys_only(tenant_id)
        if owner is not None and changes.owner_id not in (UNSET, owner):
            raise PermissionDenied("members cannot give their keys to someone else")
        now = self._clock.now()
        if not isinstance(changes.expires_at, _Unset):
            self._check_expiry(changes.expires_at, now)
        changes = _checked_changes(changes)
        async with self._uow() as uow:
            await self._tenant_prefix(uow, tenant_id)
            repo = uow.keys(tenant_id)
            key = await self._existing(actor, repo, key_id)
            identity_id = changes.identity_id
            await self._check_refs(
                uow, tenant_id, identity_id if isinstance(identity_id, str) else None, changes, now
            )
            values = {
                name: value
                for name in KeyChanges.__slots__
                if not isinstance(value := getattr(changes, name), _Unset)
            }
            credits_set = "credits" in values
            _merge_policy_and_limits(key, values, now_ms=int(now * 1000))
            updated = replace(key, **values, updated_at=to_datetime(now), version=key.version + 1)
            await self._write(repo, updated, expected_version=key.version)
            await uow.invalidations.record([key_id], at=updated.updated_at)
            await self._audit(
                uow, actor, "key.updated", updated, at=updated.updated_at, changed=tuple(values)
            )
            await uow.commit()
        self._cache.invalidate(key_id)
        credits = updated.limits.credits
        if credits_set and credits is not None and credits.remaining is not None:
            await self._limits.set_credits(
                tenant_id,
                key_slot(key_id),
                CreditState(
                    credits.remaining, credits.refilled_at_ms, updated.limits.credits_version
                ),
            )
        return updated

    @staticmethod
    async def _write(repo: KeyRepository, key: ApiKey, *, expected_version: int) -> None:
        if not await repo.update(key, expected_version=expected_version):
            raise ConcurrentUpdate

    async def set_status(
        self, actor: Principal, tenant_id: str, key_id: str, action: StatusAction
    ) -> ApiKey:
        """Revoke (final), disable or enable a key.

        Revoking a revoked key and enabling an active key change nothing and succeed.

        Raises:
            KeyNotFound: No such key in this tenant.
            KeyAlreadyRevoked: Disabling or enabling a revoked key.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id, own=True)
        now = self._clock.now()
        target = {
            "revoke": KeyStatus.REVOKED,
            "disable": KeyStatus.DISABLED,
            "enable": KeyStatus.ACTIVE,
        }[action]
        async with self._uow() as uow:
            await self._tenant_prefix(uow, tenant_id)
            repo = uow.keys(tenant_id)
            key = await self._existing(actor, repo, key_id)
            if key.status is KeyStatus.REVOKED and target is not KeyStatus.REVOKED:
                raise KeyAlreadyRevoked
            if key.status is target:
                return key
            moment = to_datetime(now)
            updated = replace(
                key,
                status=target,
                updated_at=moment,
                revoked_at=moment if target is KeyStatus.REVOKED else key.revoked_at,
                version=key.version + 1,
            )
            await self._write(repo, updated, expected_version=key.version)
            await uow.invalidations.record([key_id], at=moment)
            await self._audit(uow, actor, f"key.{action}d", updated, at=moment, changed=("status",))
            await uow.commit()
        self._cache.invalidate(key_id)
        logger.info(
            "key.status_changed",
            extra={"tenant_id": tenant_id, "key_id": key_id, "status": str(target)},
        )
        return updated

    async def rotate(
        self, actor: Principal, tenant_id: str, key_id: str, *, grace_seconds: int
    ) -> tuple[ApiKey, str]:
        """Give the key a new secret; the old one stays valid until the grace period ends.

        The grace never outlives the key's own expiry, and any secret still in an earlier grace
        ends now, so a key has at most two live secrets. Of concurrent rotations of one key,
        exactly one succeeds.

        Raises:
            KeyNotFound: No such key in this tenant.
            KeyAlreadyRevoked: The key is revoked.
            ConcurrentUpdate: Another change to the key committed first.
            InvalidInput: ``grace_seconds`` is outside 0 … 31 days.
            SystemKeyManaged: A system key (rotated only on its system-keys path).
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id, own=True)
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise InvalidInput(f"grace_seconds must be between 0 and {MAX_GRACE_SECONDS}")
        if key_id in self._rotating:
            raise ConcurrentUpdate("a rotation of this key is already in progress")
        self._rotating.add(key_id)
        try:
            updated, plaintext = await self._rotate(actor, tenant_id, key_id, grace_seconds)
        finally:
            self._rotating.discard(key_id)
        self._cache.invalidate(key_id)
        logger.info("key.rotated", extra={"tenant_id": tenant_id, "key_id": key_id})
        return updated, plaintext

    async def _rotate(
        self, actor: Principal, tenant_id: str, key_id: str, grace_seconds: int
    ) -> tuple[ApiKey, str]:
        now = self._clock.now()
        async with self._uow() as uow:
            prefix = await self._tenant_prefix(uow, tenant_id)
            repo = uow.keys(tenant_id)
            key = await self._existing(actor, repo, key_id, for_update=True)
            if key.system:
                raise SystemKeyManaged
            if key.status is KeyStatus.REVOKED:
                raise KeyAlreadyRevoked
            secret, plaintext = self._new_secret(
                key_id=key_id, tenant_id=tenant_id, prefix=prefix, now=now
            )
            moment = to_datetime(now)
            grace_end = moment + timedelta(seconds=grace_seconds)
            if key.expires_at is not None:
                grace_end = min(grace_end, key.expires_at)
            updated = replace(key, start=secret.start, updated_at=moment, version=key.version + 1)
            await self._write(repo, updated, expected_version=key.version)
            await repo.retire_secrets(key_id, grace_end=grace_end, now=moment)
            await repo.add_secret(secret)
            await uow.invalidations.record([key_id], at=moment)
            await self._audit(uow, actor, "key.rotated", updated, at=moment, changed=("secret",))
            await uow.commit()
        return updated, plaintext

    async def delete(self, actor: Principal, tenant_id: str, key_id: str) -> None:
        """Delete a key and all its secrets; verify then answers ``NOT_FOUND``.

        Raises:
            KeyNotFound: No such key in this tenant.
            SystemKeyManaged: A system key (deleted only on its system-keys path).
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id, own=True)
        moment = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._tenant_prefix(uow, tenant_id)
            repo = uow.keys(tenant_id)
            key = await self._existing(actor, repo, key_id)
            if key.system:
                raise SystemKeyManaged
            if not await repo.remove(key_id):
                raise KeyNotFound
            await uow.invalidations.record([key_id], at=moment)
            await self._audit(uow, actor, "key.deleted", key, at=moment)
            await uow.commit()
        self._cache.invalidate(key_id)
        logger.info("key.deleted", extra={"tenant_id": tenant_id, "key_id": key_id})
