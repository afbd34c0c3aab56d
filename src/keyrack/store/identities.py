"""Identities of one tenant: rows <-> domain ``Identity``; every statement filters on tenant."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keyrack.domain.models import Identity
from keyrack.errors import DuplicateExternalId
from keyrack.store.limits_json import credits_columns, limits_from_row, limits_to_json
from keyrack.store.tables import IdentityRow


def _identity(row: IdentityRow) -> Identity:
    return Identity(
        id=row.id,
        tenant_id=row.tenant_id,
        external_id=row.external_id,
        meta=row.meta,
        limits=limits_from_row(
            row.limits, row.credits_remaining, row.credits_refilled_at_ms, row.credits_version
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _config_values(identity: Identity) -> dict[str, Any]:
    """What ``update`` writes: everything but the credits snapshot (see ``write_credits``)."""
    return {
        "external_id": identity.external_id,
        "meta": identity.meta,
        "limits": limits_to_json(identity.limits),
        "version": identity.version,
        "updated_at": identity.updated_at,
    }


class SqlIdentityRepository:
    """Identities of one tenant.

    ``update`` writes the configuration only; the credits snapshot changes through
    ``write_credits`` (an explicit set, or the write-behind path), so an update that leaves the
    credits alone cannot overwrite a newer snapshot with the one it read.
    """

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def _one(self, *conditions: Any) -> Identity | None:
        row = await self._session.scalar(
            select(IdentityRow).where(IdentityRow.tenant_id == self.tenant_id, *conditions)
        )
        return None if row is None else _identity(row)

    async def get(self, identity_id: str) -> Identity | None:
        """The identity in this tenant, or ``None``."""
        return await self._one(IdentityRow.id == identity_id)

    async def by_external_id(self, external_id: str) -> Identity | None:
        """The identity of this tenant with ``external_id``, or ``None``."""
        return await self._one(IdentityRow.external_id == external_id)

    async def add(self, identity: Identity) -> None:
        """Insert; a taken ``external_id`` raises ``DuplicateExternalId``."""
        if identity.tenant_id != self.tenant_id:
            raise ValueError("identity belongs to another tenant than this repository")
        self._session.add(
            IdentityRow(
                id=identity.id,
                tenant_id=identity.tenant_id,
                created_at=identity.created_at,
                **_config_values(identity),
                **credits_columns(identity.limits),
            )
        )
        try:
            await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateExternalId from exc

    async def update(self, identity: Identity, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``; a taken ``external_id`` raises ``DuplicateExternalId``.

        The credits snapshot columns are left alone (see the class docstring).
        """
        try:
            result = await self._session.execute(
                update(IdentityRow)
                .where(
                    IdentityRow.tenant_id == self.tenant_id,
                    IdentityRow.id == identity.id,
                    IdentityRow.version == expected_version,
                )
                .values(**_config_values(identity))
            )
        except IntegrityError as exc:
            raise DuplicateExternalId from exc
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    async def remove(self, identity_id: str) -> bool:
        """Delete the identity (its keys must have been detached); whether it existed."""
        result = await self._session.execute(
            delete(IdentityRow).where(
                IdentityRow.tenant_id == self.tenant_id, IdentityRow.id == identity_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def list(
        self, *, limit: int, after: str | None, external_id: str | None = None
    ) -> builtins.list[Identity]:
        """Identities of this tenant by id after the cursor, optionally one ``external_id``."""
        stmt = (
            select(IdentityRow)
            .where(IdentityRow.tenant_id == self.tenant_id)
            .order_by(IdentityRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(IdentityRow.id > after)
        if external_id is not None:
            stmt = stmt.where(IdentityRow.external_id == external_id)
        return [_identity(row) for row in await self._session.scalars(stmt)]

    async def write_credits(
        self, identity_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        """Store a balance snapshot and its version."""
        await self._session.execute(
            update(IdentityRow)
            .where(IdentityRow.tenant_id == self.tenant_id, IdentityRow.id == identity_id)
            .values(
                credits_remaining=remaining,
                credits_refilled_at_ms=refilled_at_ms,
                credits_version=version,
            )
        )
