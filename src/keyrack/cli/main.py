"""The ``keyrack`` command group: settings, logging, and errors turned into clean messages.

Exit codes: 0 success; 1 ``keys verify`` found the key not valid; 2 bad input (a usage error,
or a refused request: not found, conflict, invalid value); 3 the environment is not usable
(configuration, secrets, database or migrations). No keyrack error prints a traceback.
"""

from __future__ import annotations

from typing import IO, Any, Final

import click
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from keyrack.cli.bootstrap import init
from keyrack.cli.db import db
from keyrack.cli.identities import identities
from keyrack.cli.keys import keys
from keyrack.cli.limits import leases, ratelimit
from keyrack.cli.people import impersonate, invitations, members, system_keys, users
from keyrack.cli.rbac import permissions, roles
from keyrack.cli.server import serve
from keyrack.cli.tenants import tenants
from keyrack.config import Settings
from keyrack.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    Gone,
    InvalidInput,
    KeyrackError,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
)
from keyrack.logging import configure

EXIT_BAD_INPUT: Final = 2
EXIT_ENVIRONMENT: Final = 3
_BAD_INPUT: Final = (
    InvalidInput,
    NotFound,
    Conflict,
    Gone,
    PermissionDenied,
    AuthenticationFailed,
    TooManyAttempts,
)


class OperatorError(click.ClickException):
    """A keyrack error as the operator sees it: ``error: <message> (<code>)`` on stderr."""

    def __init__(self, error: KeyrackError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.exit_code = EXIT_BAD_INPUT if isinstance(error, _BAD_INPUT) else EXIT_ENVIRONMENT

    def show(self, file: IO[Any] | None = None) -> None:  # click's signature
        """Write the message and its stable code to stderr."""
        click.echo(f"error: {self.message} ({self.code})", file=file, err=True)


def _driver_errors() -> tuple[type[Exception], ...]:
    # asyncpg raises its own classes (not DBAPIError) when a connection is refused at login.
    try:
        import asyncpg  # noqa: PLC0415  # optional extra 'postgres'
    except ImportError:
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError)


def _as_keyrack_error(exc: Exception) -> KeyrackError | None:
    if isinstance(exc, KeyrackError):
        return exc
    if isinstance(exc, CommandError):
        return ConfigurationError(f"migration failed: {exc}")
    if isinstance(exc, OSError) and exc.filename is not None:
        return ConfigurationError(f"cannot use {exc.filename}: {exc.strerror}")
    if isinstance(exc, _driver_errors()):
        # The server's own words ('database "x" does not exist'), which never hold a password.
        return BackendUnavailable(f"the database refused the connection: {exc}")
    if isinstance(exc, DBAPIError | OSError):
        # Driver messages may quote SQL and parameters: name the failure, not its text.
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        return BackendUnavailable(
            f"the database is unavailable ({type(cause).__name__}); check KEYRACK_DATABASE_URL"
        )
    return None


class KeyrackGroup(click.Group):
    """A group that turns keyrack, database and migration errors into ``OperatorError``."""

    def invoke(self, ctx: click.Context) -> Any:  # click's signature
        """Run the command; expected failures become one line on stderr, never a traceback."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = _as_keyrack_error(exc)
            if error is None:
                raise  # a bug: keep its traceback
            raise OperatorError(error) from exc


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Name the variables, never echo their values: some are secrets.
        problems = "; ".join(
            f"KEYRACK_{'_'.join(str(part) for part in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None


@click.group(cls=KeyrackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keyrack", prog_name="keyrack")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Self-hostable API keys: issue, verify, rotate and revoke.

    Settings come from KEYRACK_* environment variables (KEYRACK_DATABASE_URL,
    KEYRACK_SECRETS_FILE, ...). Commands that print data take --json; logs go to stderr.
    """
    settings = _settings()
    # Operator commands stay quiet unless asked: INFO lines (migrations, key events) are for
    # the server, or for KEYRACK_LOG_LEVEL set explicitly.
    quiet = "log_level" not in settings.model_fields_set and ctx.invoked_subcommand != "serve"
    configure(settings.model_copy(update={"log_level": "WARNING"}) if quiet else settings)
    ctx.obj = settings


for command in (
    init,
    serve,
    db,
    tenants,
    keys,
    identities,
    permissions,
    roles,
    ratelimit,
    leases,
    users,
    members,
    invitations,
    system_keys,
    impersonate,
):
    cli.add_command(command)


def main() -> None:
    """Run the ``keyrack`` command line (the console script and ``python -m keyrack``)."""
    cli(prog_name="keyrack")
