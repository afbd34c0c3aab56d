"""Limits on the command line: what keys and identities share, ratelimit, leases.

The limit option types of ``keys create`` and ``identities create|update``, the ``credits``
command of ``keyrack keys`` and ``keyrack identities``, ``keyrack ratelimit`` and
``keyrack leases release``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

import click

from keyrack.cli import params
from keyrack.cli.output import emit_json, json_option, show_fields
from keyrack.cli.runner import pass_settings, run
from keyrack.config import Settings
from keyrack.domain.credits import MAX_AMOUNT, NO_REFILL, Credits, Refill, RefillInterval
from keyrack.domain.ratelimit import MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS, RateLimit
from keyrack.errors import IdentityNotFound, InvalidInput, KeyNotFound, NotFound
from keyrack.schemas.limits import CreditsRead
from keyrack.services.authz import OPERATOR
from keyrack.services.credits import CreditsOp

CreditsOwner = Literal["key", "identity"]
"""Whose balance a ``credits`` command reads and changes."""


def _integer(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{what} must be a whole number, not {text!r}")
    return int(text)


class RateLimitParam(click.ParamType[RateLimit]):
    """``NAME:LIMIT:WINDOW_SECONDS``, e.g. ``requests:100:60`` (the name may contain ``:``)."""

    name = "name:limit:window_seconds"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> RateLimit:
        """Parse and bound-check one rate limit."""
        if isinstance(value, RateLimit):
            return value
        parts = str(value).rsplit(":", 2)
        if len(parts) != 3:
            self.fail(
                f"{value!r} is not NAME:LIMIT:WINDOW_SECONDS, e.g. requests:100:60", param, ctx
            )
        name, limit, window = parts
        try:
            return RateLimit(
                name, _integer(limit, "limit"), _integer(window, "window_seconds") * 1000
            )
        except InvalidInput as exc:
            self.fail(exc.message, param, ctx)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _refill(text: str) -> Refill:
    interval, *rest = text.split(":")
    if interval == RefillInterval.NEVER and not rest:
        return NO_REFILL
    if interval == RefillInterval.DAILY and len(rest) == 1:
        return Refill(RefillInterval.DAILY, _integer(rest[0], "amount"))
    if interval == RefillInterval.MONTHLY and len(rest) == 2:
        amount, day = _integer(rest[0], "amount"), _integer(rest[1], "day")
        return Refill(RefillInterval.MONTHLY, amount, day)
    raise ValueError(f"{text!r} is not never, daily:AMOUNT or monthly:AMOUNT:DAY")


class RefillParam(click.ParamType[Refill]):
    """``never``, ``daily:AMOUNT`` or ``monthly:AMOUNT:DAY`` (UTC; day 1-31, clamped)."""

    name = "refill"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Refill:
        """Parse and bound-check a refill policy."""
        if isinstance(value, Refill):
            return value
        try:
            return _refill(str(value))
        except InvalidInput as exc:
            self.fail(exc.message, param, ctx)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


RATE_LIMIT: Final = RateLimitParam()
REFILL: Final = RefillParam()

rate_limit_option = click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    type=RATE_LIMIT,
    help="NAME:LIMIT:WINDOW_SECONDS, e.g. requests:100:60 (repeatable).",
)
credits_option = click.option(
    "--credits",
    type=click.IntRange(0, MAX_AMOUNT),
    help="Credits balance; each verify spends its cost.",
)
refill_option = click.option(
    "--refill", type=REFILL, help="With --credits: never, daily:AMOUNT or monthly:AMOUNT:DAY (UTC)."
)


def credits_from_options(credits: int | None, refill: Refill | None) -> Credits | None:
    """The credits that ``--credits`` and ``--refill`` ask for (``None`` without ``--credits``).

    Raises:
        click.UsageError: ``--refill`` without ``--credits``.
    """
    if credits is None:
        if refill is not None:
            raise click.UsageError("--refill needs --credits (the balance to start from)")
        return None
    return Credits(credits, refill or NO_REFILL)


_OWNER_PREFIXES: Final[dict[CreditsOwner, tuple[str, type[NotFound]]]] = {
    "key": ("key_", KeyNotFound),
    "identity": ("idn_", IdentityNotFound),
}
_CREDITS_HELP: Final[dict[CreditsOwner, str]] = {
    "key": "Show a key's live credits balance, or change it with --set, --add or --sub.",
    "identity": (
        "Show an identity's live credits balance, or change it with --set, --add or --sub.\n\n"
        "The balance is shared by the identity's keys that have no balance of their own."
    ),
}


def show_credits(
    settings: Settings,
    tenant_id: str,
    owner_id: str,
    *,
    owner: CreditsOwner,
    set_to: int | None,
    add: int | None,
    sub: int | None,
    as_json: bool,
) -> None:
    """Read or change the balance of a key or an identity and print it.

    Args:
        settings: The process settings.
        tenant_id: The tenant of the key or identity.
        owner_id: The key id (``key_…``) or identity id (``idn_…``).
        owner: Which kind ``owner_id`` must be; an id of the other kind reads as unknown.
        set_to: The new balance, or ``None``.
        add: Units to add, or ``None``.
        sub: Units to take away, or ``None``.
        as_json: Print the API's JSON shape instead of fields.

    Raises:
        click.UsageError: More than one of --set, --add and --sub.
        KeyNotFound: ``owner`` is a key and ``owner_id`` is not a key id.
        IdentityNotFound: ``owner`` is an identity and ``owner_id`` is not an identity id.
    """
    asked: list[tuple[CreditsOp, int | None]] = [
        ("set", set_to),
        ("increment", add),
        ("decrement", sub),
    ]
    chosen = [(op, amount) for op, amount in asked if amount is not None]
    if len(chosen) > 1:
        raise click.UsageError("give at most one of --set, --add and --sub")
    prefix, not_found = _OWNER_PREFIXES[owner]
    # The service tells keys from identities by the id's prefix: without this check, a
    # key command given an identity id would read or change the identity's balance.
    if not owner_id.startswith(prefix):
        raise not_found
    if chosen:
        op, amount = chosen[0]
        balance = run(
            settings,
            lambda rt: rt.credits.change(OPERATOR, tenant_id, owner_id, op=op, amount=amount),
        )
    else:
        balance = run(settings, lambda rt: rt.credits.get(OPERATOR, tenant_id, owner_id))
    wire = CreditsRead.of(balance.remaining, balance.refill)
    if as_json:
        emit_json(wire.model_dump(mode="json"))
    else:
        show_fields(wire.model_dump(mode="json"))


def credits_command(owner: CreditsOwner) -> click.Command:
    """The ``credits`` command of ``keyrack keys`` or ``keyrack identities``."""
    metavar = "KEY_ID" if owner == "key" else "IDENTITY_ID"

    @click.option("--tenant", "tenant_id", required=True, help="Tenant id (ten_...).")
    @click.argument("owner_id", metavar=metavar)
    @click.option(
        "--set", "set_to", type=click.IntRange(0, MAX_AMOUNT), help="Set the balance to this."
    )
    @click.option("--add", type=click.IntRange(0, MAX_AMOUNT), help="Increment the balance.")
    @click.option("--sub", type=click.IntRange(0, MAX_AMOUNT), help="Decrement the balance.")
    @json_option
    @pass_settings
    def command(
        settings: Settings,
        /,
        *,
        tenant_id: str,
        owner_id: str,
        set_to: int | None,
        add: int | None,
        sub: int | None,
        as_json: bool,
    ) -> None:
        show_credits(
            settings,
            tenant_id,
            owner_id,
            owner=owner,
            set_to=set_to,
            add=add,
            sub=sub,
            as_json=as_json,
        )

    return click.command("credits", help=_CREDITS_HELP[owner])(command)


@click.command()
@click.option("--namespace", required=True, type=params.SHORT_TEXT, help="What kind of thing.")
@click.option("--identifier", required=True, type=params.SHORT_TEXT, help="Which one.")
@click.option("--limit", required=True, type=click.IntRange(1, MAX_LIMIT), help="Units/window.")
@click.option(
    "--window-seconds",
    required=True,
    type=click.IntRange(MIN_WINDOW_MS // 1000, MAX_WINDOW_MS // 1000),
)
@click.option("--cost", type=click.IntRange(0, MAX_AMOUNT), default=1, show_default=True)
@click.option("--tenant", "tenant_id", help="The tenant's namespace (default: the platform's).")
@json_option
@pass_settings
@click.pass_context
def ratelimit(
    ctx: click.Context,
    settings: Settings,
    /,
    *,
    namespace: str,
    identifier: str,
    limit: int,
    window_seconds: int,
    cost: int,
    tenant_id: str | None,
    as_json: bool,
) -> None:
    """Charge COST to a standalone rate limit; exits 1 when it is exhausted."""
    answer = run(
        settings,
        lambda rt: rt.limit_api.ratelimit(
            OPERATOR,
            tenant_id=tenant_id,
            namespace=namespace,
            identifier=identifier,
            limit=limit,
            window_seconds=window_seconds,
            cost=cost,
        ),
    )
    report = answer.report
    body = {
        "success": answer.success,
        "limit": report.limit,
        "remaining": report.remaining,
        "reset_at": datetime.fromtimestamp(report.reset_at_ms / 1000, UTC).isoformat(),
    }
    if as_json:
        emit_json(body)
    else:
        show_fields(body)
    ctx.exit(0 if answer.success else 1)


@click.group()
def leases() -> None:
    """Concurrency leases handed out by verify."""


@leases.command()
@click.argument("lease_id")
@json_option
@pass_settings
def release(settings: Settings, /, *, lease_id: str, as_json: bool) -> None:
    """Give a lease back (a repeat is harmless)."""
    released = run(settings, lambda rt: rt.limit_api.release(OPERATOR, lease_id))
    if as_json:
        emit_json({"released": released})
    else:
        click.echo("released" if released else "not held (already released or expired)")
