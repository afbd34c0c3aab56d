"""Settings, read from ``KEYRACK_*`` environment variables (DESIGN.md §11).

No instance exists at import: entrypoints call ``Settings()`` and pass it down. Peppers and
master keys are versioned lists (``2:base64,1:base64``; the highest version is current). When
neither the environment nor the secrets file holds them, ``keyrack init`` generates the file.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyrack.errors import ConfigurationError

SECRET_BYTES: Final = 32


class Settings(BaseSettings):
    """Every setting of a keyrack process; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="KEYRACK_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./keyrack.db"
    redis_url: str | None = None
    peppers: SecretStr | None = None
    master_keys: SecretStr | None = None
    secrets_file: Path = Path("keyrack.secrets")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    cache_size: int = Field(default=100_000, ge=1)
    cache_ttl_seconds: float = Field(default=30.0, gt=0, le=86_400)
    negative_cache_ttl_seconds: float = Field(default=2.0, gt=0, le=3_600)
    flush_interval_seconds: float = Field(default=2.0, gt=0, le=3_600)
    invalidation_poll_seconds: float = Field(default=0.1, gt=0, le=60)
    migrate_on_start: bool = True
    metrics_token: SecretStr | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True, slots=True)
class Secrets:
    """The decoded server secrets: versioned peppers and master keys (bytes, never logged)."""

    peppers: dict[int, bytes]
    master_keys: dict[int, bytes]
    from_file: bool = False

    def __repr__(self) -> str:
        return (
            f"Secrets(peppers={sorted(self.peppers)!r}, master_keys={sorted(self.master_keys)!r})"
        )


def _reveal(secret: SecretStr) -> str:
    # The one place a configured secret leaves its SecretStr.
    return secret.get_secret_value()


def parse_versioned(text: str, *, what: str) -> dict[int, bytes]:
    """Parse ``2:base64,1:base64`` into ``{2: b"...", 1: b"..."}``.

    Raises:
        ConfigurationError: The list is empty, malformed, repeats a version, or holds a
            value shorter than 32 bytes. The message never includes the value.
    """
    result: dict[int, bytes] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        version_text, sep, value = item.partition(":")
        if not sep or not version_text.strip().isdigit():
            raise ConfigurationError(f"{what}: each entry must be 'version:base64'")
        version = int(version_text)
        if version < 1 or version in result:
            raise ConfigurationError(f"{what}: versions must be unique and start at 1")
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{what}: version {version} is not valid base64") from None
        if len(decoded) < SECRET_BYTES:
            raise ConfigurationError(f"{what}: version {version} is shorter than 32 bytes")
        result[version] = decoded
    if not result:
        raise ConfigurationError(f"{what}: no versions given")
    return result


def _read_secrets_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            name, _, value = stripped.partition("=")
            values[name.strip()] = value.strip()
    return values


def secrets_configured(settings: Settings) -> bool:
    """Whether peppers and master keys are available from the environment or the file."""
    return (settings.peppers is not None and settings.master_keys is not None) or (
        settings.secrets_file.exists()
    )


def load_secrets(settings: Settings) -> Secrets:
    """Decode peppers and master keys: the environment wins, then the secrets file.

    Raises:
        ConfigurationError: Neither holds them (run ``keyrack init``), or they are malformed.
    """
    from_file: dict[str, str] = {}
    if settings.secrets_file.exists():
        from_file = _read_secrets_file(settings.secrets_file)
    peppers = _reveal(settings.peppers) if settings.peppers else from_file.get("KEYRACK_PEPPERS")
    masters = (
        _reveal(settings.master_keys)
        if settings.master_keys
        else from_file.get("KEYRACK_MASTER_KEYS")
    )
    if not peppers or not masters:
        raise ConfigurationError(
            "no peppers or master keys configured: set KEYRACK_PEPPERS and KEYRACK_MASTER_KEYS, "
            f"or run 'keyrack init' to generate {settings.secrets_file}"
        )
    return Secrets(
        peppers=parse_versioned(peppers, what="KEYRACK_PEPPERS"),
        master_keys=parse_versioned(masters, what="KEYRACK_MASTER_KEYS"),
        from_file=settings.peppers is None or settings.master_keys is None,
    )


def generate_secrets_file(path: Path) -> None:
    """Write a new secrets file (mode 0600) with one pepper and one master key.

    Raises:
        FileExistsError: The file exists; it is never overwritten.
    """

    def fresh() -> str:
        return base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()

    content = (
        "# keyrack server secrets, generated by 'keyrack init'. Keep this file private;\n"
        "# in production hold these values in a secret store and pass them as variables.\n"
        f"KEYRACK_PEPPERS=1:{fresh()}\n"
        f"KEYRACK_MASTER_KEYS=1:{fresh()}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
