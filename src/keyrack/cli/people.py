"""``keyrack users``, ``members``, ``invitations``, ``system-keys`` and ``impersonate``.

The people of DESIGN.md §2 and §11, managed by the local operator. ``--json`` prints the HTTP
API's shapes (``keyrack.schemas.people``). Secrets the operator hands in (passwords, invitation
tokens) are never arguments, which would land in shell history and ``ps``: they are read from
stdin (``--password-stdin``, ``--token-stdin``) or from a prompt that does not echo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import click

from keyrack.cli import params
from keyrack.cli.output import (
    emit_json,
    json_option,
    note,
    show_fields,
    show_next_cursor,
    show_table,
    text,
)
from keyrack.cli.runner import pass_settings, run
from keyrack.cli.tenants import cursor_option, limit_option
from keyrack.config import Settings
from keyrack.domain.people import Member, TenantRole, User
from keyrack.runtime import Runtime
from keyrack.schemas.common import Page
from keyrack.schemas.keys import KeyRead
from keyrack.schemas.people import (
    InvitationAccepted,
    InvitationCreated,
    InvitationRead,
    MemberRead,
    MembershipRead,
    SessionIssued,
    SystemKeyIssued,
    TenantUsers,
    UserRead,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.people import UserView
from keyrack.services.systemkeys import SystemKeySpec

USER_COLUMNS: Final = ("id", "email", "name", "is_platform_admin", "tenants", "created_at")
MEMBER_COLUMNS: Final = ("user_id", "email", "name", "role", "created_at")
INVITATION_COLUMNS: Final = ("id", "email", "role", "status", "invited_by", "expires_at")
SHOWN_ONCE: Final = (
    "this token is shown only once and cannot be retrieved again: hand it to the invitee now"
)

ROLE: Final = click.Choice([role.value for role in TenantRole])
tenant_id_argument = click.argument("tenant_id")
user_id_argument = click.argument("user_id")


class SecretInput:
    """Reads a command's secrets in order: lines of stdin, or prompts that do not echo.

    One stdin stream serves every secret of the command, so a token on the first line and a
    password on the second both arrive (a second text wrapper would lose buffered lines).
    A terminal on stdin always gets the hidden prompt, even with ``--…-stdin``: reading a
    line there would echo the secret. Prompts go to stderr, so ``--json`` stays pure.
    """

    def __init__(self) -> None:
        self._stdin = click.get_text_stream("stdin")

    def read(self, label: str, *, from_stdin: bool, confirm: bool = False) -> str:
        """Return the secret named ``label`` (``"password"``, ``"invitation token"``).

        Raises:
            click.UsageError: ``from_stdin`` was asked but stdin has no line left.
        """
        if from_stdin and not self._stdin.isatty():
            value = self._stdin.readline().rstrip("\r\n")
            if not value:
                raise click.UsageError(f"expected the {label} on a line of stdin")
            return value
        prompted: str = click.prompt(
            label.capitalize(), hide_input=True, confirmation_prompt=confirm, err=True
        )
        return prompted


def _now(rt: Runtime) -> datetime:
    # An invitation's status is rendered as of the runtime's clock, as the API renders it.
    return to_datetime(rt.clock.now())


def _show_user(view: UserView, *, as_json: bool) -> None:
    read = UserRead.of(view.user, view.memberships)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(_user_row(read))


def _user_row(read: UserRead) -> dict[str, object]:
    row: dict[str, object] = read.model_dump(exclude={"memberships"})
    row["tenants"] = [f"{m.tenant_id} ({m.role.value})" for m in read.memberships]
    return row


def _show_member(member: Member, *, as_json: bool) -> None:
    read = MemberRead.of(member)
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


def _show_invitation(read: InvitationRead, *, as_json: bool) -> None:
    if as_json:
        emit_json(read.model_dump(mode="json"))
    else:
        show_fields(read.model_dump())


# -- users ------------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Create, list and show users (the humans who log in to the portal and the API)."""


@users.command("create")
@click.option(
    "--email", required=True, type=params.SHORT_TEXT, help="The user's email (their login)."
)
@click.option("--name", required=True, type=params.NAME, help="The user's display name.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a password (12+ characters) from stdin; at a terminal, prompt without echo. "
    "Without it the user cannot log in.",
)
@click.option(
    "--platform-admin", "is_platform_admin", is_flag=True, help="Make the user a platform admin."
)
@json_option
@pass_settings
def create_user(
    settings: Settings,
    *,
    email: str,
    name: str,
    password_stdin: bool,
    is_platform_admin: bool,
    as_json: bool,
) -> None:
    """Create a user."""
    password = (
        SecretInput().read("password", from_stdin=True, confirm=True) if password_stdin else None
    )

    async def work(rt: Runtime) -> User:
        return await rt.people.create_user(
            OPERATOR,
            email=email,
            name=name,
            password=password,
            is_platform_admin=is_platform_admin,
        )

    user = run(settings, work)
    _show_user(UserView(user, ()), as_json=as_json)


@users.command("list")
@click.option("--tenant", "tenant_id", help="Only members of this tenant (ten_...).")
@click.option("--role", type=ROLE, help="Only users holding this role (in --tenant, or any).")
@limit_option
@cursor_option
@json_option
@pass_settings
def list_users(
    settings: Settings,
    *,
    tenant_id: str | None,
    role: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List users, oldest first."""
    page = run(
        settings,
        lambda rt: rt.people.list_users(
            OPERATOR, tenant_id=tenant_id, role=role, limit=limit, cursor=cursor
        ),
    )
    wire = Page[UserRead](
        items=[UserRead.of(v.user, v.memberships) for v in page.items],
        next_cursor=page.next_cursor,
    )
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(USER_COLUMNS, [_user_row(item) for item in wire.items], empty="no users")
    show_next_cursor(wire.next_cursor)


@users.command("show")
@user_id_argument
@json_option
@pass_settings
def show_user(settings: Settings, *, user_id: str, as_json: bool) -> None:
    """Show one user and the tenants it belongs to."""
    view = run(settings, lambda rt: rt.people.get_user(OPERATOR, user_id))
    _show_user(view, as_json=as_json)


# -- members ----------------------------------------------------------------------------------


@click.group()
def members() -> None:
    """Add, list, re-role and remove a tenant's members (a tenant keeps at least one admin)."""


@members.command("add")
@tenant_id_argument
@user_id_argument
@click.option("--role", required=True, type=ROLE, help="The member's role in the tenant.")
@json_option
@pass_settings
def add_member(
    settings: Settings, *, tenant_id: str, user_id: str, role: str, as_json: bool
) -> None:
    """Make the existing user USER_ID a member of TENANT_ID."""
    member = run(
        settings, lambda rt: rt.people.add_member(OPERATOR, tenant_id, user_id=user_id, role=role)
    )
    _show_member(member, as_json=as_json)


@members.command("list")
@tenant_id_argument
@click.option("--role", type=ROLE, help="Only members with this role.")
@limit_option
@cursor_option
@json_option
@pass_settings
def list_members(
    settings: Settings,
    *,
    tenant_id: str,
    role: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a tenant's members (by user id), then its pending invitations."""

    async def work(rt: Runtime) -> TenantUsers:
        people = await rt.people.tenant_people(
            OPERATOR, tenant_id, role=role, limit=limit, cursor=cursor
        )
        now = _now(rt)
        return TenantUsers(
            items=[MemberRead.of(m) for m in people.members.items],
            next_cursor=people.members.next_cursor,
            invitations=[InvitationRead.of(i, now=now) for i in people.invitations],
        )

    wire = run(settings, work)
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(MEMBER_COLUMNS, [item.model_dump() for item in wire.items], empty="no members")
    show_next_cursor(wire.next_cursor)
    if wire.invitations:
        click.echo()
        click.echo("pending invitations:")
        show_table(INVITATION_COLUMNS, [item.model_dump() for item in wire.invitations], empty="")


@members.command("set-role")
@tenant_id_argument
@user_id_argument
@click.option("--role", required=True, type=ROLE, help="The member's new role.")
@json_option
@pass_settings
def set_role(settings: Settings, *, tenant_id: str, user_id: str, role: str, as_json: bool) -> None:
    """Change a member's role; the tenant's last admin cannot be demoted."""
    member = run(
        settings, lambda rt: rt.people.change_role(OPERATOR, tenant_id, user_id, role=role)
    )
    _show_member(member, as_json=as_json)


@members.command("remove")
@tenant_id_argument
@user_id_argument
@json_option
@pass_settings
def remove_member(settings: Settings, *, tenant_id: str, user_id: str, as_json: bool) -> None:
    """Remove a member (the user stays); the tenant's last admin cannot be removed."""
    run(settings, lambda rt: rt.people.remove_member(OPERATOR, tenant_id, user_id))
    if as_json:
        emit_json({"tenant_id": tenant_id, "user_id": user_id, "removed": True})
    else:
        click.echo(f"removed {user_id} from {tenant_id}")


# -- invitations ------------------------------------------------------------------------------


@click.group()
def invitations() -> None:
    """Invite people into a tenant by email, list and revoke invitations, accept one."""


@invitations.command("create")
@tenant_id_argument
@click.option("--email", required=True, type=params.SHORT_TEXT, help="Who is invited.")
@click.option("--role", required=True, type=ROLE, help="The role the invitee gets.")
@json_option
@pass_settings
def create_invitation(
    settings: Settings, *, tenant_id: str, email: str, role: str, as_json: bool
) -> None:
    """Invite EMAIL into TENANT_ID and print the single-use token (shown this once)."""
    invitation, token = run(
        settings, lambda rt: rt.people.invite(OPERATOR, tenant_id, email=email, role=role)
    )
    created = InvitationCreated(
        invitation=InvitationRead.of(invitation, now=invitation.created_at), token=token
    )
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        show_fields({**created.invitation.model_dump(), "token": token})
    note(SHOWN_ONCE)


@invitations.command("list")
@tenant_id_argument
@click.option(
    "--all", "show_all", is_flag=True, help="Also accepted, revoked and expired invitations."
)
@limit_option
@cursor_option
@json_option
@pass_settings
def list_invitations(
    settings: Settings,
    *,
    tenant_id: str,
    show_all: bool,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a tenant's pending invitations, oldest first."""

    async def work(rt: Runtime) -> Page[InvitationRead]:
        page = await rt.people.list_invitations(
            OPERATOR, tenant_id, pending_only=not show_all, limit=limit, cursor=cursor
        )
        now = _now(rt)
        return Page[InvitationRead](
            items=[InvitationRead.of(i, now=now) for i in page.items],
            next_cursor=page.next_cursor,
        )

    wire = run(settings, work)
    if as_json:
        emit_json(wire.model_dump(mode="json"))
        return
    show_table(
        INVITATION_COLUMNS, [item.model_dump() for item in wire.items], empty="no invitations"
    )
    show_next_cursor(wire.next_cursor)


@invitations.command("revoke")
@tenant_id_argument
@click.argument("invitation_id")
@json_option
@pass_settings
def revoke_invitation(
    settings: Settings, *, tenant_id: str, invitation_id: str, as_json: bool
) -> None:
    """Revoke an open invitation: its token stops working."""

    async def work(rt: Runtime) -> InvitationRead:
        invitation = await rt.people.revoke_invitation(OPERATOR, tenant_id, invitation_id)
        return InvitationRead.of(invitation, now=_now(rt))

    _show_invitation(run(settings, work), as_json=as_json)


@invitations.command("accept")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the invitation token from the first line of stdin instead of a prompt.",
)
@click.option("--name", type=params.NAME, help="Your name, when the email has no account yet.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new account's password from stdin (after the token, with --token-stdin).",
)
@json_option
@pass_settings
def accept_invitation(
    settings: Settings,
    *,
    token_stdin: bool,
    name: str | None,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Accept an invitation with its token (never an argument: shell history keeps those).

    A new email becomes a user: give --name and a password (--password-stdin, or a prompt).
    An email that has an account already just joins the tenant: give neither.
    """
    secrets = SecretInput()
    token = secrets.read("invitation token", from_stdin=token_stdin).strip()
    password = (
        secrets.read("password", from_stdin=password_stdin, confirm=True)
        if name is not None or password_stdin
        else None
    )

    async def work(rt: Runtime) -> tuple[UserView, MembershipRead]:
        user, membership = await rt.people.accept(token, name=name, password=password)
        return await rt.people.get_user(OPERATOR, user.id), MembershipRead.of(membership)

    view, membership = run(settings, work)
    accepted = InvitationAccepted(
        user=UserRead.of(view.user, view.memberships), membership=membership
    )
    if as_json:
        emit_json(accepted.model_dump(mode="json"))
    else:
        show_fields(_user_row(accepted.user))
        click.echo(f"joined {membership.tenant_id} as {membership.role.value}")


# -- system keys ------------------------------------------------------------------------------


@click.group("system-keys")
def system_keys() -> None:
    """Get-or-create and delete the system keys a service holds on behalf of a user."""


@system_keys.command("put")
@tenant_id_argument
@user_id_argument
@click.argument("name", type=params.NAME)
@click.option("--description", type=params.DESCRIPTION, help="Free text.")
@click.option(
    "--expires-at", type=params.AWARE_DATETIME, help="ISO 8601 with a zone.  [default: never]"
)
@click.option("--meta", type=params.JSON_OBJECT, help="JSON object returned by verify.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=params.SHORT_TEXT,
    help="Permission slug, created on first use (repeatable).",
)
@click.option(
    "--role", "roles", multiple=True, type=params.SHORT_TEXT, help="Role slug (repeatable)."
)
@json_option
@pass_settings
def put_system_key(
    settings: Settings,
    *,
    tenant_id: str,
    user_id: str,
    name: str,
    description: str | None,
    expires_at: datetime | None,
    meta: dict[str, object] | None,
    permissions: tuple[str, ...],
    roles: tuple[str, ...],
    as_json: bool,
) -> None:
    """Return USER_ID's system key NAME with its secret, creating it on first use.

    The options apply only when the key is created; a repeat returns the same key and the
    same secret (each return is audited as key.revealed). The user must be a member.
    """
    spec = SystemKeySpec(
        description=description,
        expires_at=expires_at,
        meta=meta or {},
        permissions=permissions,
        roles=roles,
    )
    result = run(settings, lambda rt: rt.system_keys.put(OPERATOR, tenant_id, user_id, name, spec))
    issued = SystemKeyIssued(key=KeyRead.of(result.key), secret=result.secret)
    if as_json:
        # The API tells a creation by its status (201, else 200); the CLI says it in the body.
        emit_json({**issued.model_dump(mode="json"), "created": result.created})
    else:
        show_fields({**issued.key.model_dump(), "secret": result.secret})
    note("created a new system key" if result.created else "returned the existing system key")


@system_keys.command("delete")
@tenant_id_argument
@user_id_argument
@click.argument("name", type=params.NAME)
@json_option
@pass_settings
def delete_system_key(
    settings: Settings, *, tenant_id: str, user_id: str, name: str, as_json: bool
) -> None:
    """Delete USER_ID's system key NAME; verify answers NOT_FOUND from now on."""
    run(settings, lambda rt: rt.system_keys.delete(OPERATOR, tenant_id, user_id, name))
    if as_json:
        emit_json({"tenant_id": tenant_id, "user_id": user_id, "name": name, "deleted": True})
    else:
        click.echo(f"deleted system key {name} of {user_id}")


# -- impersonation ----------------------------------------------------------------------------


@click.command()
@user_id_argument
@json_option
@pass_settings
def impersonate(settings: Settings, *, user_id: str, as_json: bool) -> None:
    """Start a short-lived session acting as USER_ID, with exactly that user's rights.

    Every action taken with the token is audited with the operator as impersonator. End it
    early with POST /v1/admin/stop-impersonation and the token as the bearer credential.
    """
    issued = run(settings, lambda rt: rt.auth.impersonate(OPERATOR, user_id))
    session = SessionIssued(token=issued.secret, expires_at=issued.token.expires_at)
    if as_json:
        emit_json(session.model_dump(mode="json"))
    else:
        show_fields(session.model_dump())
    note(f"acting as {user_id} until {text(session.expires_at)}")
