"""``keyrack serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
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
    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        _serve_process(resolved.host, resolved.port, access_log, resolved.log_level, reuse=False)
        return
    _serve_workers(workers, resolved.host, resolved.port, access_log, resolved.log_level)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _serve_process(host: str, port: int, access_log: bool, log_level: str, *, reuse: bool) -> None:
    """Run one uvicorn server in this process (with its own SO_REUSEPORT socket if ``reuse``)."""
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        access_log=access_log,
        # keyrack.logging.configure routes uvicorn's loggers through structlog in the app factory.
        log_config=None,
        log_level=log_level.lower(),
    )
    server = uvicorn.Server(config)
    if reuse:
        # Own process group: a terminal's Ctrl+C reaches only the parent, which forwards it
        # once (a second SIGINT would make uvicorn skip the graceful shutdown and its flush).
        os.setpgid(0, 0)
        server.run(sockets=[_listening_socket(host, port)])
    else:
        server.run()


def _serve_workers(workers: int, host: str, port: int, access_log: bool, log_level: str) -> None:
    """Run ``workers`` independent server processes, each with its own SO_REUSEPORT socket.

    The kernel then spreads connections evenly across them, which uvicorn's shared-socket
    ``--workers`` does not (it often hands every connection to one worker). Each process has
    its own verify cache; the invalidation log keeps them all current.
    """
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_serve_process,
            args=(host, port, access_log, log_level),
            kwargs={"reuse": True},
            name=f"keyrack-worker-{index}",
        )
        for index in range(workers)
    ]

    def stop(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise SystemExit(1)
