"""The ``keyrack`` command group: settings, logging, and errors turned into clean messages.

Exit codes: 0 success; 1 ``keys verify`` found the key not valid; 2 bad input (a usage error,
or a refused request: not found, conflict, invalid value); 3 the environment is not usable
(configuration, secrets, database or migrations). No keyrack error prints a traceback.
"""

from __future__ import annotations

import logging
from typing import IO, Any, Final

import click
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from keyrack.cli.bootstrap import init
from keyrack.cli.db import db
from keyrack.cli.keys import keys
from keyrack.cli.server import serve
from keyrack.cli.tenants import tenants
from keyrack.config import Settings
from keyrack.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidInput,
    KeyrackError,
    NotFound,
    PermissionDenied,
)
from keyrack.logging import configure

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT: Final = 2
EXIT_ENVIRONMENT: Final = 3
_BAD_INPUT: Final = (InvalidInput, NotFound, Conflict, PermissionDenied, AuthenticationFailed)


class OperatorError(click.ClickException):
    """A keyrack error as the operator sees it: ``error: <message> (<code>)`` on stderr."""

    def __init__(self, error: KeyrackError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.exit_code = EXIT_BAD_INPUT if isinstance(error, _BAD_INPUT) else EXIT_ENVIRONMENT

    def show(self, file: IO[Any] | None = None) -> None:  # click's signature
        """Write the message and its stable code to stderr."""
        click.echo(f"error: {self.message} ({self.code})", file=file, err=True)


def _as_keyrack_error(exc: Exception) -> KeyrackError | None:
    if isinstance(exc, KeyrackError):
        return exc
    if isinstance(exc, DBAPIError | OSError):
        # Driver messages may quote SQL and parameters: the log gets the class name only.
        logger.warning("cli.database_error", extra={"error": type(exc).__name__})
        return BackendUnavailable(
            "the database is unavailable or refused the connection; check KEYRACK_DATABASE_URL"
        )
    if isinstance(exc, CommandError):
        return ConfigurationError(f"migration failed: {exc}")
    return None


class KeyrackGroup(click.Group):
    """A group that turns keyrack, database and migration errors into ``OperatorError``."""

    def invoke(self, ctx: click.Context) -> Any:  # click's signature
        """Run the command; expected failures become one line on stderr, never a traceback."""
        try:
            return super().invoke(ctx)
        except (KeyrackError, DBAPIError, OSError, CommandError) as exc:
            error = _as_keyrack_error(exc)
            if error is None:  # pragma: no cover  # the except clause names only mapped types
                raise
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


for command in (init, serve, db, tenants, keys):
    cli.add_command(command)


def main() -> None:
    """Run the ``keyrack`` command line (the console script and ``python -m keyrack``)."""
    cli(prog_name="keyrack")
