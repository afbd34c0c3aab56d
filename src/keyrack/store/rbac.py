"""Permission and role repositories: rows <-> domain objects, bound to one tenant, never commit."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import ColumnElement, Text, cast, delete, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from keyrack.domain.models import PermissionDef, Role
from keyrack.errors import DuplicatePermission, DuplicateRole
from keyrack.store.tables import PermissionRow, RoleRow

# Printable ASCII without '"' and '\\': every JSON encoder writes such a string the same way.
_PLAIN_JSON_TEXT: Final = re.compile(r"[ !#-\[\]-~]*")


def may_hold(column: InstrumentedAttribute[list[str]], name: str) -> ColumnElement[bool]:
    """A portable prefilter for rows whose JSON list ``column`` may contain ``name``.

    Matches the quoted name in the column's JSON text (``LIKE '%"admin"%'``, wildcards escaped),
    which works on SQLite and PostgreSQL alike without JSON operators. It can over-match (the
    text ``"a"`` inside a longer escaped string), never under-match, so callers check the
    decoded list. A name an encoder might escape (non-ASCII, quotes, backslashes) gets no
    prefilter: every row of the tenant is checked instead.
    """
    if _PLAIN_JSON_TEXT.fullmatch(name) is None:
        return true()
    return cast(column, Text).contains(json.dumps(name), autoescape=True)


def _permission(row: PermissionRow) -> PermissionDef:
    return PermissionDef(
        id=row.id,
        tenant_id=row.tenant_id,
        slug=row.slug,
        description=row.description,
        created_at=row.created_at,
    )


def _role(row: RoleRow) -> Role:
    return Role(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        permissions=tuple(row.permissions),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


class SqlPermissionRepository:
    """The key permissions of one tenant; every statement filters on ``tenant_id``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def get(self, permission_id: str) -> PermissionDef | None:
        """The permission in this tenant, or ``None``."""
        row = await self._session.scalar(
            select(PermissionRow).where(
                PermissionRow.tenant_id == self.tenant_id, PermissionRow.id == permission_id
            )
        )
        return None if row is None else _permission(row)

    async def by_slugs(self, slugs: Sequence[str]) -> builtins.list[PermissionDef]:
        """The permissions of this tenant among ``slugs``."""
        if not slugs:
            return []
        rows = await self._session.scalars(
            select(PermissionRow).where(
                PermissionRow.tenant_id == self.tenant_id, PermissionRow.slug.in_(set(slugs))
            )
        )
        return [_permission(row) for row in rows]

    async def add(self, permission: PermissionDef) -> None:
        """Insert; a taken slug raises ``DuplicatePermission``.

        ``INSERT … ON CONFLICT DO NOTHING`` keeps the transaction usable after a duplicate, so
        first-use creation can shrug off a permission another transaction created meanwhile
        (on PostgreSQL it waits for that transaction instead of failing it).
        """
        if permission.tenant_id != self.tenant_id:
            raise ValueError("permission belongs to another tenant than this repository")
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(PermissionRow)
            .values(
                id=permission.id,
                tenant_id=permission.tenant_id,
                slug=permission.slug,
                description=permission.description,
                created_at=permission.created_at,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "slug"])
        )
        result = await self._session.execute(stmt)
        if not result.rowcount:  # type: ignore[attr-defined]  # CursorResult of an INSERT
            raise DuplicatePermission

    async def remove(self, permission_id: str) -> bool:
        """Delete the permission; whether it existed."""
        result = await self._session.execute(
            delete(PermissionRow).where(
                PermissionRow.tenant_id == self.tenant_id, PermissionRow.id == permission_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def list(self, *, limit: int, after: str | None) -> builtins.list[PermissionDef]:
        """Permissions of this tenant by id after the cursor."""
        stmt = (
            select(PermissionRow)
            .where(PermissionRow.tenant_id == self.tenant_id)
            .order_by(PermissionRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(PermissionRow.id > after)
        return [_permission(row) for row in await self._session.scalars(stmt)]


class SqlRoleRepository:
    """The roles of one tenant; every statement filters on ``tenant_id``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def get(self, role_id: str) -> Role | None:
        """The role in this tenant, or ``None``."""
        row = await self._session.scalar(
            select(RoleRow).where(RoleRow.tenant_id == self.tenant_id, RoleRow.id == role_id)
        )
        return None if row is None else _role(row)

    async def by_names(self, names: Sequence[str]) -> builtins.list[Role]:
        """The roles of this tenant among ``names``."""
        if not names:
            return []
        rows = await self._session.scalars(
            select(RoleRow).where(RoleRow.tenant_id == self.tenant_id, RoleRow.name.in_(set(names)))
        )
        return [_role(row) for row in rows]

    async def add(self, role: Role) -> None:
        """Insert; a taken name raises ``DuplicateRole``."""
        if role.tenant_id != self.tenant_id:
            raise ValueError("role belongs to another tenant than this repository")
        self._session.add(
            RoleRow(
                id=role.id,
                tenant_id=role.tenant_id,
                name=role.name,
                description=role.description,
                permissions=list(role.permissions),
                version=role.version,
                created_at=role.created_at,
                updated_at=role.updated_at,
            )
        )
        try:
            await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateRole from exc

    async def update(self, role: Role, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``; a taken name raises ``DuplicateRole``."""
        try:
            result = await self._session.execute(
                update(RoleRow)
                .where(
                    RoleRow.tenant_id == self.tenant_id,
                    RoleRow.id == role.id,
                    RoleRow.version == expected_version,
                )
                .values(
                    name=role.name,
                    description=role.description,
                    permissions=list(role.permissions),
                    version=role.version,
                    updated_at=role.updated_at,
                )
            )
        except IntegrityError as exc:
            raise DuplicateRole from exc
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    async def remove(self, role_id: str) -> bool:
        """Delete the role; whether it existed."""
        result = await self._session.execute(
            delete(RoleRow).where(RoleRow.tenant_id == self.tenant_id, RoleRow.id == role_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def list(self, *, limit: int, after: str | None) -> builtins.list[Role]:
        """Roles of this tenant by id after the cursor."""
        stmt = (
            select(RoleRow)
            .where(RoleRow.tenant_id == self.tenant_id)
            .order_by(RoleRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(RoleRow.id > after)
        return [_role(row) for row in await self._session.scalars(stmt)]

    async def strip_permission(self, slug: str) -> None:
        """Remove ``slug`` from every role of this tenant (bumping each changed role's version).

        The port carries no time, so ``updated_at`` is the wall clock here.
        """
        rows = await self._session.scalars(
            select(RoleRow)
            .where(RoleRow.tenant_id == self.tenant_id, may_hold(RoleRow.permissions, slug))
            .order_by(RoleRow.id)  # one lock order, so two strips cannot deadlock
            .with_for_update()
            # Rows read earlier in this transaction are refreshed from the locked versions.
            .execution_options(populate_existing=True)
        )
        now = datetime.now(UTC)
        for row in rows:
            if slug in row.permissions:  # the text may match where the list does not
                # A new list object, so the ORM sees the JSON value change.
                row.permissions = [p for p in row.permissions if p != slug]
                row.version += 1
                row.updated_at = now
        await self._session.flush()
