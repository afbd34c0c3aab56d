"""``keyrack init``, and the server secrets it generates on a bare machine (DESIGN.md §11)."""

from __future__ import annotations

import asyncio

import click
from sqlalchemy import Connection, inspect, select

from keyrack.cli.output import emit_json, json_option, note, show_fields
from keyrack.cli.runner import check_database_url, pass_settings, run
from keyrack.config import Settings, generate_secrets_file, secrets_configured
from keyrack.errors import ConfigurationError
from keyrack.runtime import Runtime
from keyrack.store.engine import make_engine
from keyrack.store.migrate import current_revision
from keyrack.store.tables import KeySecretRow, RootKeyRow


def _holds_digests(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    probes = (
        (KeySecretRow.__tablename__, select(KeySecretRow.id).limit(1)),
        (RootKeyRow.__tablename__, select(RootKeyRow.id).limit(1)),
    )
    return any(
        name in tables and connection.execute(probe).first() is not None for name, probe in probes
    )


async def database_holds_digests(database_url: str) -> bool:
    """Whether the database already stores key or root key digests (made with some pepper)."""
    check_database_url(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_holds_digests)
    finally:
        await engine.dispose()


def ensure_secrets(settings: Settings) -> bool:
    """Generate the secrets file when no peppers or master keys are configured.

    Returns:
        Whether a new file was written.

    Raises:
        ConfigurationError: Only one of the two variables is set, the database already holds
            digests made with peppers that are now missing (new ones would orphan every key),
            or the file cannot be written.
    """
    if secrets_configured(settings):
        return False
    if (settings.peppers is None) != (settings.master_keys is None):
        raise ConfigurationError(
            "set both KEYRACK_PEPPERS and KEYRACK_MASTER_KEYS, or neither to use the secrets file"
        )
    if asyncio.run(database_holds_digests(settings.database_url)):
        raise ConfigurationError(
            f"the database already holds API keys or root keys, but {settings.secrets_file} "
            "does not exist; new peppers would make every existing key unverifiable. Point "
            "KEYRACK_SECRETS_FILE at the original secrets file (or set KEYRACK_PEPPERS and "
            "KEYRACK_MASTER_KEYS)"
        )
    try:
        generate_secrets_file(settings.secrets_file)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the secrets file {settings.secrets_file}: {exc.strerror}"
        ) from exc
    note(
        f"generated {settings.secrets_file} (mode 0600) with a new pepper and master key. "
        "Keep it private and back it up: without it no existing key verifies. In production "
        "hold these values in a secret store and pass them as KEYRACK_PEPPERS and "
        "KEYRACK_MASTER_KEYS."
    )
    return True


async def _bootstrap(runtime: Runtime) -> tuple[str | None, str | None]:
    root_key = await runtime.accounts.bootstrap()
    return root_key, await current_revision(runtime.engine)


@click.command()
@json_option
@pass_settings
def init(settings: Settings, *, as_json: bool) -> None:
    """Set up keyrack: secrets (when none are configured), schema, and the first root key.

    The platform root key is printed once; run init again and it says one exists. With
    --json the answer is {"root_key": "krroot_..."}, or {"root_key": null}.
    """
    ensure_secrets(settings)
    root_key, revision = run(settings, _bootstrap)
    if as_json:
        emit_json({"root_key": root_key})
        return
    if root_key is None:
        show_fields({"database": f"migrated to revision {revision}"})
        note("a bootstrap root key already exists; it is not shown again")
        return
    show_fields({"database": f"migrated to revision {revision}", "root_key": root_key})
    note(
        "this root key is shown only once: store it now. Call the API with "
        "'Authorization: Bearer <root key>'."
    )
