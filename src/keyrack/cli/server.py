"""``keyrack serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import os
from typing import Final

import click
import uvicorn

from keyrack.cli.bootstrap import ensure_secrets
from keyrack.cli.runner import pass_settings, run
from keyrack.config import Settings
from keyrack.runtime import Runtime

APP_FACTORY: Final = "keyrack.api.app:create_app_from_env"
# Secret fields are never copied into the environment: when set, they came from it already.
_SECRET_FIELDS: Final = frozenset({"peppers", "master_keys", "metrics_token"})


def child_environment(settings: Settings) -> dict[str, str]:
    """The ``KEYRACK_*`` variables that make a server process read exactly ``settings``.

    The secrets file is made absolute so a worker finds it whatever its directory.
    """
    env: dict[str, str] = {}
    values = settings.model_dump(exclude=set(_SECRET_FIELDS))
    values["secrets_file"] = settings.secrets_file.resolve()
    for name, value in values.items():
        if value is not None:
            env[f"KEYRACK_{name.upper()}"] = str(value)
    return env


async def _ready(runtime: Runtime) -> None:
    # Opening the runtime migrated the schema and decoded the secrets; nothing else to do.
    del runtime


@click.command()
@click.option(
    "--host", default=None, help="Interface to bind.  [default: KEYRACK_HOST or 127.0.0.1]"
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on.  [default: KEYRACK_PORT or 8080]",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes."
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (costs about 20% of throughput).",
)
@pass_settings
def serve(
    settings: Settings, *, host: str | None, port: int | None, workers: int, access_log: bool
) -> None:
    """Serve the HTTP API: migrate once, then run uvicorn.

    Generates the secrets file first when no peppers or master keys are configured (as init
    does), but creates no root key: run 'keyrack init' for that.
    """
    resolved = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    ensure_secrets(resolved)
    run(resolved, _ready)
    # The app factory reads KEYRACK_* in each server process: hand it what was resolved here.
    # The schema is current now: the server processes need not migrate again.
    os.environ.update(child_environment(resolved.model_copy(update={"migrate_on_start": False})))
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=resolved.host,
        port=resolved.port,
        workers=workers,
        access_log=access_log,
        # keyrack.logging.configure routes uvicorn's loggers through structlog in the app factory.
        log_config=None,
        log_level=resolved.log_level.lower(),
        # A spawned worker imports the whole app before it answers the supervisor's ping; on a
        # busy small machine that can take longer than uvicorn's 5 s, which restarts it.
        timeout_worker_healthcheck=30,
    )
