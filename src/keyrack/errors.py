"""Every exception keyrack raises on purpose.

Expected verify outcomes (revoked, expired, unknown key …) are values, never exceptions;
these classes are for refused management requests, broken invariants and infrastructure.

The tree::

    KeyrackError                      code: ClassVar[str], message: str (safe to show)
      NotFound                        404
        TenantNotFound, KeyNotFound, ServiceAccountNotFound, RootKeyNotFound,
        IdentityNotFound, PermissionNotFound, RoleNotFound, LeaseNotFound,
        UserNotFound, MemberNotFound, InvitationNotFound, UserTokenNotFound
      Conflict                        409
        KeyAlreadyRevoked, DuplicateSlug, ConcurrentUpdate, DuplicateExternalId,
        DuplicatePermission, DuplicateRole, InsufficientCredits, DuplicateEmail,
        AlreadyMember, LastAdmin, InvitationClosed, SystemKeyManaged
      Gone                            410
        InvitationExpired
      AuthenticationFailed            401
        ApiKeyRejected                (the library's route guard: outcome in details)
      PermissionDenied                403
        NotAMember                    (system keys for a user outside the tenant)
      TooManyAttempts                 429 (failed logins; ``retry_after`` in details)
      InvalidInput                    422 (400 for PermissionQuerySyntax)
      BackendUnavailable              503 (database or Redis down; wraps the cause)
      SecretUnreadable                500 (a sealed secret failed authentication: tampered
                                      row, or its master key version is not configured)
      ConfigurationError              not an HTTP error: raised at start-up
        MissingDependency             (also ImportError)

HTTP status codes are chosen in exactly one place: ``keyrack.api.problems``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyMember",
    "ApiKeyRejected",
    "AuthenticationFailed",
    "BackendUnavailable",
    "ConcurrentUpdate",
    "ConfigurationError",
    "Conflict",
    "DuplicateEmail",
    "DuplicateExternalId",
    "DuplicatePermission",
    "DuplicateRole",
    "DuplicateSlug",
    "Gone",
    "IdentityNotFound",
    "InsufficientCredits",
    "InvalidInput",
    "InvitationClosed",
    "InvitationExpired",
    "InvitationNotFound",
    "KeyAlreadyRevoked",
    "KeyNotFound",
    "KeyrackError",
    "LastAdmin",
    "LeaseNotFound",
    "MemberNotFound",
    "MissingDependency",
    "NotAMember",
    "NotFound",
    "PermissionDenied",
    "PermissionNotFound",
    "PermissionQuerySyntax",
    "RoleNotFound",
    "RootKeyNotFound",
    "SecretUnreadable",
    "ServiceAccountNotFound",
    "SystemKeyManaged",
    "TenantNotFound",
    "TooManyAttempts",
    "UserNotFound",
    "UserTokenNotFound",
]


class KeyrackError(Exception):
    """Base of every error keyrack raises on purpose; its message is safe to show a caller."""

    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "keyrack error"

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class NotFound(KeyrackError):
    """The object does not exist, or belongs to a tenant the caller cannot see."""

    code = "not_found"
    default_message = "not found"


class TenantNotFound(NotFound):
    """No such tenant (or not visible to the caller)."""

    code = "tenant.not_found"
    default_message = "tenant not found"


class KeyNotFound(NotFound):
    """No such API key in this tenant."""

    code = "key.not_found"
    default_message = "key not found"


class ServiceAccountNotFound(NotFound):
    """No such service account in this scope."""

    code = "service_account.not_found"
    default_message = "service account not found"


class RootKeyNotFound(NotFound):
    """No such root key on this service account."""

    code = "root_key.not_found"
    default_message = "root key not found"


class Conflict(KeyrackError):
    """The request conflicts with the current state."""

    code = "conflict"
    default_message = "conflict with the current state"


class KeyAlreadyRevoked(Conflict):
    """The key is revoked, and revocation is final."""

    code = "key.revoked"
    default_message = "the key is revoked; revocation is final"


class IdentityNotFound(NotFound):
    """No such identity in this tenant."""

    code = "identity.not_found"
    default_message = "identity not found"


class PermissionNotFound(NotFound):
    """No such permission in this tenant."""

    code = "permission.not_found"
    default_message = "permission not found"


class RoleNotFound(NotFound):
    """No such role in this tenant."""

    code = "role.not_found"
    default_message = "role not found"


class LeaseNotFound(NotFound):
    """The lease id is malformed or belongs to a tenant the caller cannot see."""

    code = "lease.not_found"
    default_message = "lease not found"


class DuplicateExternalId(Conflict):
    """An identity with this ``external_id`` already exists in the tenant."""

    code = "identity.duplicate_external_id"
    default_message = "an identity with this external_id already exists in the tenant"


class DuplicatePermission(Conflict):
    """A permission with this slug already exists in the tenant."""

    code = "permission.duplicate"
    default_message = "a permission with this slug already exists in the tenant"


class DuplicateRole(Conflict):
    """A role with this name already exists in the tenant."""

    code = "role.duplicate"
    default_message = "a role with this name already exists in the tenant"


class InsufficientCredits(Conflict):
    """A decrement would take the balance below zero (nothing changed)."""

    code = "credits.insufficient"
    default_message = "the balance is lower than the decrement; nothing was changed"


class DuplicateSlug(Conflict):
    """A tenant with this slug already exists."""

    code = "tenant.duplicate_slug"
    default_message = "a tenant with this slug already exists"


class ConcurrentUpdate(Conflict):
    """Another request changed the object first; retry against its new state."""

    code = "concurrent_update"
    default_message = "the object was changed by a concurrent request; retry"


class AuthenticationFailed(KeyrackError):
    """The caller's own credential is missing, malformed, unknown or no longer valid."""

    code = "auth.unauthenticated"
    default_message = "a valid root key is required (Authorization: Bearer krroot_...)"


class ApiKeyRejected(AuthenticationFailed):
    """The API key presented to a guarded route did not verify (``details["outcome"]``)."""

    code = "api_key.rejected"
    default_message = "a valid API key is required"

    def __init__(self, outcome: str) -> None:
        super().__init__(f"the API key was rejected: {outcome}", outcome=outcome)


class PermissionDenied(KeyrackError):
    """The caller is authenticated but lacks the permission this action needs."""

    code = "auth.forbidden"
    default_message = "the caller lacks the permission this action needs"


class InvalidInput(KeyrackError):
    """The request is well-formed JSON but its values are not acceptable."""

    code = "invalid_input"
    default_message = "invalid input"


class PermissionQuerySyntax(InvalidInput):
    """The permission query is malformed; ``position`` is the 0-based offset of the problem."""

    code = "permissions.query_syntax"
    default_message = "malformed permission query"

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message, position=position)
        self.position = position


class BackendUnavailable(KeyrackError):
    """A store (database or Redis) cannot be reached; the request changed nothing."""

    code = "backend.unavailable"
    default_message = "a backing store is unavailable; retry later"


class ConfigurationError(KeyrackError):
    """The settings are inconsistent or incomplete."""

    code = "config.invalid"
    default_message = "invalid configuration"


class MissingDependency(ConfigurationError, ImportError):
    """An optional extra is needed for the configured backend."""

    code = "config.missing_dependency"

    def __init__(self, *, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'keyrack[{extra}]'"
        )


class UserNotFound(NotFound):
    """No such user (or not visible to the caller)."""

    code = "user.not_found"
    default_message = "user not found"


class MemberNotFound(NotFound):
    """The user is not a member of this tenant."""

    code = "member.not_found"
    default_message = "member not found"


class InvitationNotFound(NotFound):
    """No such invitation, or no invitation has this token."""

    code = "invitation.not_found"
    default_message = "invitation not found"


class UserTokenNotFound(NotFound):
    """No such personal access token of this user."""

    code = "token.not_found"
    default_message = "token not found"


class DuplicateEmail(Conflict):
    """Another user already has this email address."""

    code = "user.duplicate_email"
    default_message = "a user with this email already exists"


class AlreadyMember(Conflict):
    """The user is already a member of this tenant."""

    code = "member.exists"
    default_message = "the user is already a member of this tenant"


class LastAdmin(Conflict):
    """The change would leave the tenant without an admin."""

    code = "member.last_admin"
    default_message = "a tenant keeps at least one admin: promote another member first"


class InvitationClosed(Conflict):
    """The invitation was already accepted or revoked; its token works once."""

    code = "invitation.closed"
    default_message = "this invitation was already used or revoked"


class SystemKeyManaged(Conflict):
    """System keys are rotated and deleted only on their system-keys path."""

    code = "key.system"
    default_message = (
        "this is a system key: rotate or delete it at "
        "/v1/tenants/{tenant_id}/users/{user_id}/system-keys/{name}"
    )


class Gone(KeyrackError):
    """The object existed but has expired."""

    code = "gone"
    default_message = "gone"


class InvitationExpired(Gone):
    """The invitation's token has expired; ask for a new invitation."""

    code = "invitation.expired"
    default_message = "this invitation has expired: ask a tenant admin for a new one"


class NotAMember(PermissionDenied):
    """The user is not a member of the tenant the request names."""

    code = "member.required"
    default_message = "the user is not a member of this tenant"


class TooManyAttempts(KeyrackError):
    """Too many failed attempts; ``details['retry_after']`` says when to try again (seconds)."""

    code = "auth.too_many_attempts"
    default_message = "too many failed attempts: try again later"


class SecretUnreadable(KeyrackError):
    """A sealed secret did not decrypt: the row was altered or its master key is missing."""

    code = "secret.unreadable"
    default_message = "a stored secret could not be decrypted"
