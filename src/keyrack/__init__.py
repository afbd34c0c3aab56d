"""keyrack: API keys for multi-tenant platforms, verified in microseconds.

The library surface: open a ``Keyrack`` to manage and verify keys in-process, protect routes
with ``KeyGuard``, or serve the HTTP API with ``create_app``.
"""

from keyrack._version import __version__
from keyrack.api.app import create_app
from keyrack.config import Settings
from keyrack.domain.models import ApiKey, KeyStatus, Tenant
from keyrack.domain.verification import Outcome, VerifyResult
from keyrack.embedded import Keyrack
from keyrack.errors import (
    ApiKeyRejected,
    AuthenticationFailed,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidInput,
    KeyrackError,
    NotFound,
    PermissionDenied,
)
from keyrack.guard import KeyGuard

__all__ = [
    "ApiKey",
    "ApiKeyRejected",
    "AuthenticationFailed",
    "BackendUnavailable",
    "ConfigurationError",
    "Conflict",
    "InvalidInput",
    "KeyGuard",
    "KeyStatus",
    "Keyrack",
    "KeyrackError",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "Settings",
    "Tenant",
    "VerifyResult",
    "__version__",
    "create_app",
]
