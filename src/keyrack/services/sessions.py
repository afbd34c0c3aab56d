"""Human credentials: login sessions, personal access tokens and impersonation.

Every human token is a high-entropy bearer token (``domain.people``), looked up by its peppered
digest on each request: revoking one (logout, stop-impersonation) takes effect at once on every
replica, and a user's rights are read fresh each time, so a changed role applies at once too.

Failed logins are rate limited per account and per client IP in the limit store (Redis when
configured, so the count is shared by every replica): ``LOGIN_FAILURES_PER_ACCOUNT`` and
``LOGIN_FAILURES_PER_IP`` in ``LOGIN_WINDOW_SECONDS``. Only failures count; while an account or IP
is over its limit every attempt is refused without checking the password.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from keyrack.domain import ids
from keyrack.domain import keys as keyformat
from keyrack.domain.audit import NO_ORIGIN, AuditEvent, Ref, RequestOrigin
from keyrack.domain.hashing import Peppers
from keyrack.domain.limits import LimitRequest, RateCharge
from keyrack.domain.people import (
    TOKEN_PREFIXES,
    TokenKind,
    UserToken,
    check_email,
    token_kind_of,
)
from keyrack.domain.permissions import (
    PLATFORM_ADMIN_PERMISSIONS,
    Permission,
    Principal,
    PrincipalKind,
)
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    TooManyAttempts,
    UserNotFound,
    UserTokenNotFound,
)
from keyrack.services import inputs
from keyrack.services.audit import event
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import (
    Clock,
    Entropy,
    LimitStore,
    PasswordHasher,
    UnitOfWork,
    UnitOfWorkFactory,
)

logger = logging.getLogger(__name__)

SESSION_TTL: Final = timedelta(hours=12)
IMPERSONATION_TTL: Final = timedelta(minutes=15)
PAT_DEFAULT_TTL: Final = timedelta(days=90)
PAT_MAX_TTL: Final = timedelta(days=366)
LOGIN_WINDOW_SECONDS: Final = 15 * 60
LOGIN_FAILURES_PER_ACCOUNT: Final = 10
LOGIN_FAILURES_PER_IP: Final = 100
LOGIN_NAMESPACE: Final = "_login"
"""The limit store namespace of login counters (never a tenant id: those start ``ten_``)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: its record and its plaintext (shown once)."""

    token: UserToken
    secret: str

    def __repr__(self) -> str:
        return f"IssuedToken(token={self.token!r})"


class SessionService:
    """Login and logout, personal access tokens, impersonation, and token authentication."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        entropy: Entropy,
        peppers: Peppers,
        hasher: PasswordHasher,
        limits: LimitStore,
        session_ttl: timedelta = SESSION_TTL,
        impersonation_ttl: timedelta = IMPERSONATION_TTL,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._entropy = entropy
        self._peppers = peppers
        self._hasher = hasher
        self._limits = limits
        self._session_ttl = session_ttl
        self._impersonation_ttl = impersonation_ttl

    def _new_token(
        self,
        kind: TokenKind,
        *,
        user_id: str,
        now: float,
        ttl: timedelta,
        name: str | None = None,
        impersonator: Ref | None = None,
    ) -> tuple[UserToken, str]:
        secret = keyformat.generate(
            TOKEN_PREFIXES[kind], entropy=self._entropy(keyformat.RANDOM_BYTES)
        )
        created = to_datetime(now)
        token = UserToken(
            id=ids.new_id("tok", now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES)),
            user_id=user_id,
            kind=kind,
            name=name,
            start=keyformat.display_start(secret),
            created_at=created,
            expires_at=created + ttl,
            impersonator_type=None if impersonator is None else impersonator.type,
            impersonator_id=None if impersonator is None else impersonator.id,
        )
        return token, secret

    async def _store(self, uow: UnitOfWork, token: UserToken, secret: str) -> None:
        await uow.user_tokens.add(
            token,
            digest=self._peppers.digest(secret),
            pepper_version=self._peppers.current_version,
        )

    # -- login ----------------------------------------------------------------------------

    def _login_charges(self, email: str, ip: str | None, cost: int) -> LimitRequest:
        window_ms = LOGIN_WINDOW_SECONDS * 1000
        charges = [
            RateCharge(
                f"acct:{email}",
                RateLimit("login_account", LOGIN_FAILURES_PER_ACCOUNT, window_ms),
                cost,
            )
        ]
        if ip is not None:
            charges.append(
                RateCharge(
                    f"ip:{ip}", RateLimit("login_ip", LOGIN_FAILURES_PER_IP, window_ms), cost
                )
            )
        return LimitRequest(LOGIN_NAMESPACE, tuple(charges))

    async def _check_throttle(self, email: str, ip: str | None, now: float) -> None:
        answer = await self._limits.apply(self._login_charges(email, ip, 1), dry_run=True)
        # A dry run charges nothing, so its outcome is always VALID: an exhausted limit shows
        # as ``remaining == 0``.
        if any(r.remaining == 0 for r in answer.rates):
            reset_ms = max(r.reset_at_ms for r in answer.rates if r.remaining == 0)
            retry_after = max(1, int(reset_ms / 1000 - now + 0.999))
            raise TooManyAttempts(retry_after=retry_after)

    async def login(
        self, email: str, password: str, *, origin: RequestOrigin = NO_ORIGIN
    ) -> IssuedToken:
        """Check a user's password and open a session.

        Raises:
            TooManyAttempts: Too many recent failures for this account or IP.
            AuthenticationFailed: Unknown email, no password set, or a wrong password (one
                answer for all three).
        """
        now = self._clock.now()
        try:
            normalised = check_email(email)
        except ValueError:
            raise AuthenticationFailed("wrong email or password") from None
        await self._check_throttle(normalised, origin.ip, now)
        async with self._uow() as uow:
            user = await uow.users.by_email(normalised)
            stored = None if user is None else await uow.users.password_hash(user.id)
        matched = await self._hasher.verify(stored, password)
        if user is None or stored is None or not matched:
            await self._limits.apply(self._login_charges(normalised, origin.ip, 1))
            async with self._uow() as uow:
                await uow.audit.record(
                    AuditEvent(
                        tenant_id=None,
                        at=to_datetime(now),
                        action="user.login",
                        actor=Ref("user", user.id) if user else Ref("anonymous", "-"),
                        target=None if user is None else Ref("user", user.id),
                        origin=origin,
                        outcome="failure",
                    )
                )
                await uow.commit()
            logger.info("user.login_failed", extra={"ip": origin.ip})
            raise AuthenticationFailed("wrong email or password")
        token, secret = self._new_token(
            TokenKind.SESSION, user_id=user.id, now=now, ttl=self._session_ttl
        )
        new_hash = await self._hasher.hash(password) if self._hasher.needs_rehash(stored) else None
        async with self._uow() as uow:
            if new_hash is not None:
                await uow.users.set_password(user.id, new_hash)
            await self._store(uow, token, secret)
            await uow.audit.record(
                AuditEvent(
                    tenant_id=None,
                    at=token.created_at,
                    action="user.login",
                    actor=Ref("user", user.id),
                    target=Ref("user", user.id),
                    origin=origin,
                )
            )
            await uow.commit()
        logger.info("user.login", extra={"user_id": user.id, "token_id": token.id})
        return IssuedToken(token, secret)

    async def logout(self, actor: Principal) -> None:
        """Revoke the session (or token) the caller authenticated with.

        Raises:
            InvalidInput: The caller did not authenticate with a user token.
        """
        if not actor.is_user or actor.token_id is None:
            raise InvalidInput("log out with the session token you logged in with")
        async with self._uow() as uow:
            await uow.user_tokens.revoke(actor.token_id, at=to_datetime(self._clock.now()))
            await uow.commit()

    # -- authentication -------------------------------------------------------------------

    async def authenticate(self, presented: str, *, origin: RequestOrigin = NO_ORIGIN) -> Principal:
        """Turn a presented session, impersonation or personal token into its principal.

        Raises:
            AuthenticationFailed: Not such a token, unknown, revoked or expired.
        """
        if token_kind_of(presented) is None or not keyformat.is_well_formed(presented):
            raise AuthenticationFailed
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            match = await uow.user_tokens.find(list(self._peppers.all_digests(presented)))
        if match is None or not match.token.is_live(now):
            raise AuthenticationFailed
        token, user = match.token, match.user
        impersonator = (
            None
            if token.impersonator_id is None or token.impersonator_type is None
            else Ref(token.impersonator_type, token.impersonator_id)
        )
        # An impersonation session is the user's own rights, never more: it is built from the
        # user's record exactly like the user's own session.
        return Principal(
            kind=PrincipalKind.USER,
            id=user.id,
            tenant_id=None,
            permissions=PLATFORM_ADMIN_PERMISSIONS if user.is_platform_admin else frozenset(),
            may_grant_reveal=user.is_platform_admin,
            is_platform_admin=user.is_platform_admin,
            memberships=tuple((m.tenant_id, m.role) for m in match.memberships),
            impersonator=impersonator,
            token_id=token.id,
            origin=origin,
        )

    # -- personal access tokens -----------------------------------------------------------

    @staticmethod
    def _require_own_user(actor: Principal) -> None:
        if not actor.is_user:
            raise PermissionDenied("personal access tokens belong to users")
        if actor.impersonator is not None:
            raise PermissionDenied("an impersonation session cannot manage personal tokens")

    async def create_token(
        self, actor: Principal, *, name: str, expires_at: datetime | None = None
    ) -> IssuedToken:
        """Issue a personal access token acting with the user's own rights (shown once).

        Raises:
            PermissionDenied: The caller is not a user, or is impersonating one.
            InvalidInput: A bad name, or an expiry not within the next 366 days.
        """
        self._require_own_user(actor)
        now = self._clock.now()
        moment = to_datetime(now)
        until = expires_at if expires_at is not None else moment + PAT_DEFAULT_TTL
        if not moment < until <= moment + PAT_MAX_TTL:
            raise InvalidInput("expires_at must be in the future and at most 366 days away")
        token, secret = self._new_token(
            TokenKind.PERSONAL,
            user_id=actor.id,
            now=now,
            ttl=until - moment,
            name=inputs.name(name),
        )
        async with self._uow() as uow:
            await self._store(uow, token, secret)
            await uow.audit.record(
                event(
                    actor,
                    "token.created",
                    tenant_id=None,
                    target=Ref("token", token.id),
                    at=moment,
                    changed=("name", "expires_at"),
                )
            )
            await uow.commit()
        return IssuedToken(token, secret)

    async def list_tokens(
        self, actor: Principal, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[UserToken]:
        """A page of the caller's personal access tokens (live or not, never secrets)."""
        self._require_own_user(actor)
        async with self._uow() as uow:
            tokens = uow.user_tokens

            async def fetch(n: int, after: str | None) -> list[UserToken]:
                return await tokens.list(actor.id, kind=TokenKind.PERSONAL, limit=n, after=after)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="tok")

    async def revoke_token(self, actor: Principal, token_id: str) -> None:
        """Revoke one of the caller's personal access tokens (a repeat is harmless).

        Raises:
            UserTokenNotFound: The caller has no such personal token.
        """
        self._require_own_user(actor)
        moment = to_datetime(self._clock.now())
        async with self._uow() as uow:
            token = await uow.user_tokens.get(actor.id, token_id)
            if token is None or token.kind is not TokenKind.PERSONAL:
                raise UserTokenNotFound
            if await uow.user_tokens.revoke(token_id, at=moment):
                await uow.audit.record(
                    event(
                        actor,
                        "token.revoked",
                        tenant_id=None,
                        target=Ref("token", token_id),
                        at=moment,
                    )
                )
            await uow.commit()

    # -- impersonation --------------------------------------------------------------------

    async def impersonate(self, actor: Principal, user_id: str) -> IssuedToken:
        """Start a short-lived session acting as ``user_id`` with exactly the user's rights.

        Raises:
            PermissionDenied: The caller lacks the platform ``impersonate`` permission, is
                impersonating already, or the user is a platform admin.
            UserNotFound: No such user.
        """
        authorize(actor, Permission.IMPERSONATE, tenant_id=None)
        if actor.impersonator is not None:
            raise PermissionDenied("an impersonation session cannot impersonate")
        if actor.is_user and actor.id == user_id:
            raise InvalidInput("you cannot impersonate yourself")
        now = self._clock.now()
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound
            if user.is_platform_admin:
                raise PermissionDenied("platform admins cannot be impersonated")
            token, secret = self._new_token(
                TokenKind.IMPERSONATION,
                user_id=user_id,
                now=now,
                ttl=self._impersonation_ttl,
                impersonator=actor.ref,
            )
            await self._store(uow, token, secret)
            await uow.audit.record(
                event(
                    actor,
                    "impersonation.started",
                    tenant_id=None,
                    target=Ref("user", user_id),
                    at=token.created_at,
                )
            )
            await uow.commit()
        logger.info(
            "impersonation.started",
            extra={"impersonator_id": actor.id, "user_id": user_id, "token_id": token.id},
        )
        return IssuedToken(token, secret)

    async def stop_impersonation(self, actor: Principal) -> None:
        """End the impersonation session the caller authenticated with.

        Raises:
            InvalidInput: The caller's credential is not an impersonation session.
        """
        if actor.impersonator is None or actor.token_id is None:
            raise InvalidInput("call this with the impersonation session's token")
        moment = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await uow.user_tokens.revoke(actor.token_id, at=moment)
            await uow.audit.record(
                replace(
                    event(
                        actor,
                        "impersonation.stopped",
                        tenant_id=None,
                        target=Ref("user", actor.id),
                        at=moment,
                    ),
                    actor=actor.impersonator,
                    impersonator=None,
                )
            )
            await uow.commit()
        logger.info("impersonation.stopped", extra={"user_id": actor.id})
