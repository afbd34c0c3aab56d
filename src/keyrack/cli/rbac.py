"""``keyrack permissions`` and ``keyrack roles``: what a tenant's API keys may be granted."""

from __future__ import annotations

from typing import Final

import click

from keyrack.cli import params
from keyrack.cli.output import emit_json, json_option, show_fields, show_next_cursor, show_table
from keyrack.cli.runner import pass_settings, run
from keyrack.cli.tenants import cursor_option, limit_option
from keyrack.config import Settings
from keyrack.domain.models import MAX_NAME_LENGTH, PermissionDef, Role
from keyrack.domain.permission_query import is_permission_name
from keyrack.schemas.common import Page
from keyrack.schemas.rbac import PermissionRead, RoleRead
from keyrack.services.authz import OPERATOR
from keyrack.services.rbac import NewPermission, NewRole, RoleChanges

PERMISSION_COLUMNS: Final = ("id", "slug", "description", "created_at")
ROLE_COLUMNS: Final = ("id", "name", "permissions", "description", "updated_at")

tenant_option = click.option("--tenant", "tenant_id", required=True, help="Tenant id (ten_...).")


class PermissionName(click.ParamType[str]):
    """A permission slug of the query grammar: ``chat.write``, ``documents.*`` or ``*``."""

    name = "permission"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        """Return the slug, or fail with what a permission name looks like."""
        text = str(value)
        if len(text) > MAX_NAME_LENGTH or not is_permission_name(text):
            self.fail(
                f"{text[:64]!r} is not a permission name: lower-case segments of a-z, 0-9, "
                "'_', ':' and '-' separated by '.', optionally ending in '.*' (or '*' alone)",
                param,
                ctx,
            )
        return text


PERMISSION: Final = PermissionName()


def _show_permission(permission: PermissionDef, *, as_json: bool) -> None:
    read = PermissionRead.of(permission)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


def _show_role(role: Role, *, as_json: bool) -> None:
    read = RoleRead.of(role)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


def _show_deleted(object_id: str, *, as_json: bool) -> None:
    if as_json:
        emit_json({"id": object_id, "deleted": True})
    else:
        click.echo(f"deleted {object_id}")


@click.group()
def permissions() -> None:
    """Create, list and delete the permission slugs of a tenant's API keys."""


@permissions.command("create")
@tenant_option
@click.argument("slug", type=PERMISSION)
@click.option("--description", type=params.DESCRIPTION, help="Free text.")
@json_option
@pass_settings
def create_permission(
    settings: Settings, *, tenant_id: str, slug: str, description: str | None, as_json: bool
) -> None:
    """Create the permission SLUG (e.g. chat.write or documents.*)."""
    spec = NewPermission(slug=slug, description=description)
    permission = run(settings, lambda rt: rt.rbac.create_permission(OPERATOR, tenant_id, spec))
    _show_permission(permission, as_json=as_json)


@permissions.command("list")
@tenant_option
@limit_option
@cursor_option
@json_option
@pass_settings
def list_permissions(
    settings: Settings, *, tenant_id: str, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List a tenant's permissions, oldest first."""
    page = run(
        settings,
        lambda rt: rt.rbac.list_permissions(OPERATOR, tenant_id, limit=limit, cursor=cursor),
    )
    wire = Page[PermissionRead](
        items=[PermissionRead.of(p) for p in page.items], next_cursor=page.next_cursor
    )
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(
        PERMISSION_COLUMNS, [item.model_dump() for item in wire.items], empty="no permissions"
    )
    show_next_cursor(wire.next_cursor)


@permissions.command("get")
@tenant_option
@click.argument("permission_id")
@json_option
@pass_settings
def get_permission(
    settings: Settings, *, tenant_id: str, permission_id: str, as_json: bool
) -> None:
    """Show one permission."""
    permission = run(
        settings, lambda rt: rt.rbac.get_permission(OPERATOR, tenant_id, permission_id)
    )
    _show_permission(permission, as_json=as_json)


@permissions.command("delete")
@tenant_option
@click.argument("permission_id")
@json_option
@pass_settings
def delete_permission(
    settings: Settings, *, tenant_id: str, permission_id: str, as_json: bool
) -> None:
    """Delete a permission; it is taken off every role and key of the tenant."""
    run(settings, lambda rt: rt.rbac.delete_permission(OPERATOR, tenant_id, permission_id))
    _show_deleted(permission_id, as_json=as_json)


@click.group()
def roles() -> None:
    """Create, list, update and delete the roles of a tenant's API keys."""


permission_option = click.option(
    "--permission",
    "permission_slugs",
    multiple=True,
    type=PERMISSION,
    help="Permission slug (repeatable); missing ones are created.",
)


@roles.command("create")
@tenant_option
@click.argument("name", type=params.NAME)
@click.option("--description", type=params.DESCRIPTION, help="Free text.")
@permission_option
@json_option
@pass_settings
def create_role(
    settings: Settings,
    *,
    tenant_id: str,
    name: str,
    description: str | None,
    permission_slugs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create the role NAME bundling the given permissions."""
    spec = NewRole(name=name, description=description, permissions=permission_slugs)
    role = run(settings, lambda rt: rt.rbac.create_role(OPERATOR, tenant_id, spec))
    _show_role(role, as_json=as_json)


@roles.command("list")
@tenant_option
@limit_option
@cursor_option
@json_option
@pass_settings
def list_roles(
    settings: Settings, *, tenant_id: str, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List a tenant's roles, oldest first."""
    page = run(
        settings,
        lambda rt: rt.rbac.list_roles(OPERATOR, tenant_id, limit=limit, cursor=cursor),
    )
    wire = Page[RoleRead](items=[RoleRead.of(r) for r in page.items], next_cursor=page.next_cursor)
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(ROLE_COLUMNS, [item.model_dump() for item in wire.items], empty="no roles")
    show_next_cursor(wire.next_cursor)


@roles.command("get")
@tenant_option
@click.argument("role_id")
@json_option
@pass_settings
def get_role(settings: Settings, *, tenant_id: str, role_id: str, as_json: bool) -> None:
    """Show one role."""
    role = run(settings, lambda rt: rt.rbac.get_role(OPERATOR, tenant_id, role_id))
    _show_role(role, as_json=as_json)


@roles.command("update")
@tenant_option
@click.argument("role_id")
@click.option("--name", type=params.NAME, help="New name (keys holding the role follow).")
@click.option("--description", type=params.DESCRIPTION, help="New description.")
@click.option("--no-description", "clear_description", is_flag=True, help="Remove the description.")
@permission_option
@click.option(
    "--no-permissions",
    "clear_permissions",
    is_flag=True,
    help="Leave the role with no permissions.",
)
@json_option
@pass_settings
def update_role(
    settings: Settings,
    *,
    tenant_id: str,
    role_id: str,
    name: str | None,
    description: str | None,
    clear_description: bool,
    permission_slugs: tuple[str, ...],
    clear_permissions: bool,
    as_json: bool,
) -> None:
    """Change a role; --permission (repeatable) replaces its whole permission list."""
    if clear_description and description is not None:
        raise click.UsageError("--description and --no-description exclude each other")
    if clear_permissions and permission_slugs:
        raise click.UsageError("--permission and --no-permissions exclude each other")
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = name
    if description is not None or clear_description:
        values["description"] = description
    if permission_slugs or clear_permissions:
        values["permissions"] = permission_slugs
    if not values:
        raise click.UsageError("nothing to change: give --name, --description or --permission")
    changes = RoleChanges(**values)  # type: ignore[arg-type]  # each value has its field's type
    role = run(settings, lambda rt: rt.rbac.update_role(OPERATOR, tenant_id, role_id, changes))
    _show_role(role, as_json=as_json)


@roles.command("delete")
@tenant_option
@click.argument("role_id")
@json_option
@pass_settings
def delete_role(settings: Settings, *, tenant_id: str, role_id: str, as_json: bool) -> None:
    """Delete a role; it is taken off every key of the tenant."""
    run(settings, lambda rt: rt.rbac.delete_role(OPERATOR, tenant_id, role_id))
    _show_deleted(role_id, as_json=as_json)
