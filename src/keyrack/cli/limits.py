"""``keyrack ratelimit`` and ``keyrack leases release``: limits outside verify, in-process."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from keyrack.cli import params
from keyrack.cli.output import emit_json, json_option, show_fields
from keyrack.cli.runner import pass_settings, run
from keyrack.config import Settings
from keyrack.domain.credits import MAX_AMOUNT
from keyrack.domain.ratelimit import MAX_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS
from keyrack.services.authz import OPERATOR


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
