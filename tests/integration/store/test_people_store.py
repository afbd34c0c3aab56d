"""One contract suite for the people store: users, memberships, invitations, user tokens, audit.

Runs over the fakes (``tests/fakes.py``), SQLite and, when ``KEYRACK_TEST_POSTGRES_URL`` is
set, PostgreSQL, so the fakes the service tests rely on keep the SQL store's promises. Also
the key repository's system keys and sealed secrets, and ``TenantRepository.list(among=…)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from keyrack.domain.audit import AuditEvent, Ref, RequestOrigin
from keyrack.domain.models import ApiKey
from keyrack.domain.people import (
    Invitation,
    Membership,
    TenantRole,
    TokenKind,
    User,
    UserToken,
)
from keyrack.errors import AlreadyMember, Conflict, DuplicateEmail
from keyrack.services.ports import UnitOfWork
from keyrack.store.engine import make_engine
from keyrack.store.migrate import upgrade
from keyrack.store.tables import AuditEventRow, Base
from keyrack.store.uow import SqlUnitOfWork
from tests.fakes import FakeDatabase, FakeUnitOfWork
from tests.integration.store.builders import Build, digest_of
from tests.integration.store.statements import StatementLog

pytestmark = pytest.mark.anyio

ADMIN, MEMBER = TenantRole.ADMIN, TenantRole.MEMBER
BLOCKED_FOR = 0.3  # seconds a waiter must still be waiting for a lock held by another unit


@dataclass
class Backend:
    """A way to open units of work on one store, plus what only that store can show."""

    name: str
    new: Callable[[], UnitOfWork]
    engine: AsyncEngine | None = None
    db: FakeDatabase | None = None

    async def audit_events(self) -> list[AuditEvent]:
        """Every recorded event in insertion order, read back from the store's own rows."""
        if self.db is not None:
            return [self.db.audit_events[n] for n in sorted(self.db.audit_events)]
        assert self.engine is not None
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(select(AuditEventRow).order_by(AuditEventRow.id))
            ).all()
        return [
            AuditEvent(
                tenant_id=row.tenant_id,
                at=row.at,
                action=row.action,
                actor=Ref(row.actor_type, row.actor_id),
                target=None if row.target_type is None else Ref(row.target_type, row.target_id),
                impersonator=None
                if row.impersonator_type is None
                else Ref(row.impersonator_type, row.impersonator_id),
                origin=RequestOrigin(row.ip, row.user_agent, row.request_id),
                outcome=row.outcome,
                changed=tuple(row.changed),
            )
            for row in rows
        ]


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await connection.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """``None`` for the fake, a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "fake":
        return None
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'people.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def store(store_url: str | None) -> AsyncIterator[Backend]:
    """The store under test, empty and migrated."""
    if store_url is None:
        db = FakeDatabase()
        yield Backend("fake", lambda: FakeUnitOfWork(db), db=db)
        return
    engine = make_engine(store_url)
    if engine.dialect.name == "postgresql":
        await _truncate(engine)  # the session's database, migrated once
    else:
        await upgrade(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        yield Backend(engine.dialect.name, lambda: SqlUnitOfWork(sessions), engine=engine)
    finally:
        await engine.dispose()


@pytest.fixture
def build() -> Build:
    return Build()


def user(build: Build, email: str | None = None, **changes: object) -> User:
    user_id = build.id("usr")
    made = User(
        id=user_id,
        email=email or f"{user_id.lower()}@example.com",
        name="Ada",
        is_platform_admin=False,
        created_at=build.at,
    )
    return replace(made, **changes)  # type: ignore[arg-type]  # test-only field overrides


def membership(tenant_id: str, user_id: str, role: TenantRole, build: Build) -> Membership:
    return Membership(tenant_id, user_id, role, build.at, build.at)


def invitation(build: Build, tenant_id: str, **changes: object) -> Invitation:
    made = Invitation(
        id=build.id("inv"),
        tenant_id=tenant_id,
        email="new@example.com",
        role=MEMBER,
        invited_by="usr_admin",
        created_at=build.at,
        expires_at=build.later(3600),
    )
    return replace(made, **changes)  # type: ignore[arg-type]  # test-only field overrides


def token(build: Build, user_id: str, **changes: object) -> UserToken:
    made = UserToken(
        id=build.id("tok"),
        user_id=user_id,
        kind=TokenKind.SESSION,
        name=None,
        start="krses_AbCd",
        created_at=build.at,
        expires_at=build.later(3600),
    )
    return replace(made, **changes)  # type: ignore[arg-type]  # test-only field overrides


async def tenants(store: Backend, build: Build, count: int = 1) -> list[str]:
    made = [build.tenant() for _ in range(count)]
    async with store.new() as uow:
        for tenant in made:
            await uow.tenants.add(tenant)
        await uow.commit()
    return [t.id for t in made]


async def users(store: Backend, build: Build, count: int = 1) -> list[User]:
    made = [user(build) for _ in range(count)]
    async with store.new() as uow:
        for person in made:
            await uow.users.add(person, password_hash=None)
        await uow.commit()
    return made


async def join(
    store: Backend, build: Build, tenant_id: str, *pairs: tuple[User, TenantRole]
) -> None:
    async with store.new() as uow:
        for person, role in pairs:
            await uow.memberships(tenant_id).add(membership(tenant_id, person.id, role, build))
        await uow.commit()


async def committed(store: Backend, change: Callable[[UnitOfWork], Awaitable[None]]) -> None:
    """Run ``change`` in a unit of work of its own and commit it."""
    async with store.new() as uow:
        await change(uow)
        await uow.commit()


async def still_waiting(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is still blocked after ``BLOCKED_FOR`` seconds."""
    await asyncio.sleep(BLOCKED_FOR)
    return not task.done()


class TestUsers:
    async def test_added_user_reads_back_by_id_and_email(self, store: Backend, build: Build):
        with_password = user(build, "ada@example.com")
        without = user(build, "bob@example.com", is_platform_admin=True)
        async with store.new() as uow:
            await uow.users.add(with_password, password_hash="$argon2id$v=19$hash")
            await uow.users.add(without, password_hash=None)
            await uow.commit()
        async with store.new() as uow:
            assert replace(with_password, has_password=True) == await uow.users.get(
                with_password.id
            )
            assert without == await uow.users.by_email("bob@example.com")
            assert "$argon2id$v=19$hash" == await uow.users.password_hash(with_password.id)
            assert None is await uow.users.password_hash(without.id)
            assert None is await uow.users.get("usr_missing")
            assert None is await uow.users.by_email("nobody@example.com")
            assert None is await uow.users.password_hash("usr_missing")

    async def test_a_taken_email_is_a_duplicate_and_the_transaction_goes_on(
        self, store: Backend, build: Build
    ):
        first, other = user(build, "ada@example.com"), user(build, "bob@example.com")
        async with store.new() as uow:
            await uow.users.add(first, password_hash=None)
            with pytest.raises(DuplicateEmail):
                await uow.users.add(user(build, "ada@example.com"), password_hash=None)
            await uow.users.add(other, password_hash=None)
            await uow.commit()
        async with store.new() as uow:
            assert [first, other] == await uow.users.list(limit=10, after=None)

    async def test_an_email_committed_meanwhile_is_a_duplicate(self, store: Backend, build: Build):
        async with store.new() as slow:
            assert None is await slow.users.by_email("ada@example.com")
            async with store.new() as fast:
                await fast.users.add(user(build, "ada@example.com"), password_hash=None)
                await fast.commit()
            with pytest.raises(DuplicateEmail):
                await slow.users.add(user(build, "ada@example.com"), password_hash=None)

    async def test_set_password_replaces_the_hash(self, store: Backend, build: Build):
        [person] = await users(store, build)
        async with store.new() as uow:
            await uow.users.set_password(person.id, "$argon2id$new")
            await uow.commit()
        async with store.new() as uow:
            assert "$argon2id$new" == await uow.users.password_hash(person.id)
            found = await uow.users.get(person.id)
        assert found is not None
        assert found.has_password

    async def test_list_pages_by_id(self, store: Backend, build: Build):
        made = await users(store, build, 5)
        async with store.new() as uow:
            first = await uow.users.list(limit=2, after=None)
            second = await uow.users.list(limit=2, after=first[-1].id)
            rest = await uow.users.list(limit=10, after=second[-1].id)
        assert (made[:2], made[2:4], made[4:]) == (first, second, rest)

    async def test_list_filters_by_tenant_and_role(self, store: Backend, build: Build):
        one, two = await tenants(store, build, 2)
        ann, ben, cat, dan = await users(store, build, 4)
        await join(store, build, one, (ann, ADMIN), (ben, MEMBER))
        await join(store, build, two, (ann, ADMIN), (cat, ADMIN), (ben, ADMIN))
        async with store.new() as uow:
            listed = {
                "all": await uow.users.list(limit=10, after=None),
                "one": await uow.users.list(limit=10, after=None, tenant_id=one),
                "one-admin": await uow.users.list(limit=10, after=None, tenant_id=one, role=ADMIN),
                "one-member": await uow.users.list(
                    limit=10, after=None, tenant_id=one, role=MEMBER
                ),
                "any-admin": await uow.users.list(limit=10, after=None, role=ADMIN),
                "admin-page": await uow.users.list(limit=1, after=ann.id, role=ADMIN),
            }
        assert {
            "all": [ann, ben, cat, dan],
            "one": [ann, ben],
            "one-admin": [ann],
            "one-member": [ben],
            "any-admin": [ann, ben, cat],  # each once, however many tenants they admin
            "admin-page": [ben],
        } == listed

    async def test_memberships_of_users_by_user_then_tenant(self, store: Backend, build: Build):
        one, two = await tenants(store, build, 2)
        ann, ben, cat = await users(store, build, 3)
        await join(store, build, two, (ann, MEMBER), (ben, ADMIN))
        await join(store, build, one, (ann, ADMIN))
        async with store.new() as uow:
            found = await uow.users.memberships([ben.id, ann.id, cat.id])
            nothing = await uow.users.memberships([])
        assert [
            membership(one, ann.id, ADMIN, build),
            membership(two, ann.id, MEMBER, build),
            membership(two, ben.id, ADMIN, build),
        ] == found
        assert [] == nothing


class TestMemberships:
    async def test_added_membership_reads_back(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        [ann] = await users(store, build)
        await join(store, build, tenant_id, (ann, ADMIN))
        async with store.new() as uow:
            assert membership(tenant_id, ann.id, ADMIN, build) == await uow.memberships(
                tenant_id
            ).get(ann.id)
            assert None is await uow.memberships(tenant_id).get("usr_missing")

    async def test_a_second_membership_is_already_member_and_the_transaction_goes_on(
        self, store: Backend, build: Build
    ):
        [tenant_id] = await tenants(store, build)
        ann, ben = await users(store, build, 2)
        async with store.new() as uow:
            members = uow.memberships(tenant_id)
            await members.add(membership(tenant_id, ann.id, ADMIN, build))
            with pytest.raises(AlreadyMember):
                await members.add(membership(tenant_id, ann.id, MEMBER, build))
            await members.add(membership(tenant_id, ben.id, MEMBER, build))
            await uow.commit()
        async with store.new() as uow:
            listed = await uow.memberships(tenant_id).list(limit=10, after=None)
        assert [(ann.id, ADMIN), (ben.id, MEMBER)] == [
            (m.user.id, m.membership.role) for m in listed
        ]

    async def test_a_membership_committed_meanwhile_is_already_member(
        self, store: Backend, build: Build
    ):
        [tenant_id] = await tenants(store, build)
        [ann] = await users(store, build)
        async with store.new() as slow:
            assert None is await slow.memberships(tenant_id).get(ann.id)
            await join(store, build, tenant_id, (ann, ADMIN))
            with pytest.raises(AlreadyMember):
                await slow.memberships(tenant_id).add(membership(tenant_id, ann.id, MEMBER, build))

    async def test_a_membership_of_an_unknown_user_conflicts(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        stray = membership(tenant_id, "usr_missing", MEMBER, build)
        with pytest.raises(Conflict):
            await committed(store, lambda uow: uow.memberships(tenant_id).add(stray))

    async def test_a_membership_of_another_tenant_is_refused(self, store: Backend, build: Build):
        mine, theirs = await tenants(store, build, 2)
        [ann] = await users(store, build)
        async with store.new() as uow:
            with pytest.raises(ValueError, match="another tenant"):
                await uow.memberships(mine).add(membership(theirs, ann.id, ADMIN, build))

    async def test_set_role_and_remove_say_whether_the_member_existed(
        self, store: Backend, build: Build
    ):
        [tenant_id] = await tenants(store, build)
        ann, ben = await users(store, build, 2)
        await join(store, build, tenant_id, (ann, ADMIN), (ben, MEMBER))
        async with store.new() as uow:
            members = uow.memberships(tenant_id)
            results = (
                await members.set_role(ben.id, ADMIN, at=build.later(60)),
                await members.set_role("usr_missing", ADMIN, at=build.later(60)),
                await members.remove(ann.id),
                await members.remove(ann.id),
            )
            await uow.commit()
        async with store.new() as uow:
            left = await uow.memberships(tenant_id).list(limit=10, after=None)
        assert (True, False, True, False) == results
        assert [Membership(tenant_id, ben.id, ADMIN, build.at, build.later(60))] == [
            m.membership for m in left
        ]

    async def test_list_joins_users_filters_by_role_and_pages(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        ann, ben, cat = await users(store, build, 3)
        await join(store, build, tenant_id, (ann, ADMIN), (ben, MEMBER), (cat, MEMBER))
        async with store.new() as uow:
            members = uow.memberships(tenant_id)
            first = await members.list(limit=2, after=None)
            rest = await members.list(limit=2, after=first[-1].user.id)
            plain = await members.list(limit=10, after=None, role=MEMBER)
            admins = await members.admin_ids(lock=False)
        assert [ann, ben] == [m.user for m in first]
        assert [membership(tenant_id, ann.id, ADMIN, build)] == [first[0].membership]
        assert [cat] == [m.user for m in rest]
        assert [ben, cat] == [m.user for m in plain]
        assert [ann.id] == admins

    async def test_admin_ids_with_lock_waits_for_the_unit_holding_it(
        self, store: Backend, build: Build
    ):
        """Two demotions cannot both see two admins: the second reads after the first commits."""
        [tenant_id] = await tenants(store, build)
        ann, ben = await users(store, build, 2)
        await join(store, build, tenant_id, (ann, ADMIN), (ben, ADMIN))

        async def second_demotion() -> list[str]:
            async with store.new() as uow:
                seen = await uow.memberships(tenant_id).admin_ids(lock=True)
                await uow.commit()
            return seen

        async with store.new() as first:
            assert [ann.id, ben.id] == await first.memberships(tenant_id).admin_ids(lock=True)
            waiter = asyncio.create_task(second_demotion())
            assert await still_waiting(waiter)
            await first.memberships(tenant_id).set_role(ann.id, MEMBER, at=build.later(1))
            await first.commit()
        assert [ben.id] == await waiter

    async def test_another_tenant_never_sees_the_memberships(self, store: Backend, build: Build):
        mine, theirs = await tenants(store, build, 2)
        [ann] = await users(store, build)
        await join(store, build, theirs, (ann, ADMIN))
        async with store.new() as uow:
            members = uow.memberships(mine)
            seen = (
                await members.get(ann.id),
                await members.list(limit=10, after=None),
                await members.admin_ids(lock=True),
                await members.set_role(ann.id, MEMBER, at=build.later(1)),
                await members.remove(ann.id),
            )
            await uow.commit()
        async with store.new() as uow:
            still = await uow.memberships(theirs).get(ann.id)
        assert (None, [], [], False, False) == seen
        assert membership(theirs, ann.id, ADMIN, build) == still


class TestInvitations:
    async def test_added_invitation_reads_back_and_is_found_by_any_digest(
        self, store: Backend, build: Build
    ):
        [tenant_id] = await tenants(store, build)
        made = invitation(build, tenant_id, role=ADMIN)
        async with store.new() as uow:
            await uow.invitations(tenant_id).add(made, digest=digest_of("inv"), pepper_version=2)
            await uow.commit()
        async with store.new() as uow:
            assert made == await uow.invitations(tenant_id).get(made.id)
            assert made == await uow.invitation_tokens.find([digest_of("x"), digest_of("inv")])
            assert None is await uow.invitation_tokens.find([digest_of("x")])
            assert None is await uow.invitation_tokens.find([])
            assert None is await uow.invitations(tenant_id).get("inv_missing")

    async def test_list_pages_and_keeps_only_pending_ones_when_asked(
        self, store: Backend, build: Build
    ):
        [tenant_id] = await tenants(store, build)
        now = build.later(600)
        made = [
            invitation(build, tenant_id),  # pending
            invitation(build, tenant_id, accepted_at=build.later(1)),
            invitation(build, tenant_id, revoked_at=build.later(1)),
            invitation(build, tenant_id, expires_at=now),  # expired at exactly now
            invitation(build, tenant_id, expires_at=build.later(601)),  # pending
        ]
        async with store.new() as uow:
            for n, item in enumerate(made):
                await uow.invitations(tenant_id).add(
                    item, digest=digest_of(f"inv{n}"), pepper_version=1
                )
            await uow.commit()
        async with store.new() as uow:
            invitations = uow.invitations(tenant_id)
            first = await invitations.list(limit=3, after=None)
            rest = await invitations.list(limit=3, after=first[-1].id)
            pending = await invitations.list(limit=10, after=None, pending_at=now)
            pending_page = await invitations.list(limit=10, after=made[0].id, pending_at=now)
        assert (made[:3], made[3:]) == (first, rest)
        assert [made[0], made[4]] == pending
        assert [made[4]] == pending_page

    async def test_close_closes_once(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        accepted, revoked = invitation(build, tenant_id), invitation(build, tenant_id)
        async with store.new() as uow:
            invitations = uow.invitations(tenant_id)
            await invitations.add(accepted, digest=digest_of("a"), pepper_version=1)
            await invitations.add(revoked, digest=digest_of("r"), pepper_version=1)
            await uow.commit()
        at = build.later(5)
        async with store.new() as uow:
            invitations = uow.invitations(tenant_id)
            closes = (
                await invitations.close(accepted.id, accepted_at=at),
                await invitations.close(accepted.id, revoked_at=at),
                await invitations.close(revoked.id, revoked_at=at),
                await invitations.close(revoked.id, accepted_at=at),
                await invitations.close("inv_missing", accepted_at=at),
            )
            await uow.commit()
        async with store.new() as uow:
            assert replace(accepted, accepted_at=at) == await uow.invitations(tenant_id).get(
                accepted.id
            )
            assert replace(revoked, revoked_at=at) == await uow.invitations(tenant_id).get(
                revoked.id
            )
            assert (True, False, True, False, False) == closes
            with pytest.raises(ValueError, match="exactly one"):
                await uow.invitations(tenant_id).close(accepted.id)
            with pytest.raises(ValueError, match="exactly one"):
                await uow.invitations(tenant_id).close(accepted.id, accepted_at=at, revoked_at=at)

    @pytest.mark.parametrize("first_commits", [True, False], ids=["commits", "rolls-back"])
    async def test_a_concurrent_close_waits_and_loses_to_a_committed_one(
        self, store: Backend, build: Build, first_commits: bool
    ):
        [tenant_id] = await tenants(store, build)
        made = invitation(build, tenant_id)
        async with store.new() as uow:
            await uow.invitations(tenant_id).add(made, digest=digest_of("i"), pepper_version=1)
            await uow.commit()

        async def revoke() -> bool:
            async with store.new() as uow:
                closed = await uow.invitations(tenant_id).close(made.id, revoked_at=build.later(2))
                await uow.commit()
            return closed

        async with store.new() as first:
            assert await first.invitations(tenant_id).close(made.id, accepted_at=build.later(1))
            racer = asyncio.create_task(revoke())
            assert await still_waiting(racer)
            if first_commits:
                await first.commit()
        assert (not first_commits) == await racer
        async with store.new() as uow:
            final = await uow.invitations(tenant_id).get(made.id)
        assert final is not None
        expected = ("accepted", None) if first_commits else ("revoked", build.later(2))
        assert expected == (final.state(build.at), final.revoked_at)

    async def test_another_tenant_never_sees_the_invitation(self, store: Backend, build: Build):
        mine, theirs = await tenants(store, build, 2)
        made = invitation(build, theirs)
        async with store.new() as uow:
            await uow.invitations(theirs).add(made, digest=digest_of("i"), pepper_version=1)
            with pytest.raises(ValueError, match="another tenant"):
                await uow.invitations(mine).add(
                    invitation(build, theirs), digest=digest_of("j"), pepper_version=1
                )
            await uow.commit()
        async with store.new() as uow:
            invitations = uow.invitations(mine)
            seen = (
                await invitations.get(made.id),
                await invitations.list(limit=10, after=None),
                await invitations.close(made.id, revoked_at=build.later(1)),
            )
            await uow.commit()
        async with store.new() as uow:
            still = await uow.invitations(theirs).get(made.id)
        assert (None, [], False) == seen
        assert made == still


class TestUserTokens:
    async def test_find_returns_the_token_its_user_and_their_memberships(
        self, store: Backend, build: Build
    ):
        one, two = await tenants(store, build, 2)
        [ann] = await users(store, build)
        await join(store, build, two, (ann, MEMBER))
        await join(store, build, one, (ann, ADMIN))
        made = token(
            build,
            ann.id,
            kind=TokenKind.IMPERSONATION,
            impersonator_type="user",
            impersonator_id="usr_root",
        )
        async with store.new() as uow:
            await uow.user_tokens.add(made, digest=digest_of("t"), pepper_version=3)
            await uow.commit()
        async with store.new() as uow:
            match = await uow.user_tokens.find([digest_of("old"), digest_of("t")])
            missing = await uow.user_tokens.find([digest_of("old")])
            empty = await uow.user_tokens.find([])
        assert match is not None
        assert (made, ann, 3) == (match.token, match.user, match.pepper_version)
        assert (
            membership(one, ann.id, ADMIN, build),
            membership(two, ann.id, MEMBER, build),
        ) == match.memberships
        assert (None, None) == (missing, empty)

    async def test_find_returns_revoked_and_expired_tokens_too(self, store: Backend, build: Build):
        [ann] = await users(store, build)
        revoked = token(build, ann.id, revoked_at=build.later(1))
        expired = token(build, ann.id, expires_at=build.later(-1))
        async with store.new() as uow:
            await uow.user_tokens.add(revoked, digest=digest_of("r"), pepper_version=1)
            await uow.user_tokens.add(expired, digest=digest_of("e"), pepper_version=1)
            await uow.commit()
        async with store.new() as uow:
            found = [await uow.user_tokens.find([digest_of(d)]) for d in ("r", "e")]
        assert [revoked, expired] == [m.token for m in found if m is not None]

    async def test_get_and_list_stay_with_their_user_and_kind(self, store: Backend, build: Build):
        ann, ben = await users(store, build, 2)
        pats = [token(build, ann.id, kind=TokenKind.PERSONAL, name=f"ci{n}") for n in range(3)]
        session = token(build, ann.id)
        theirs = token(build, ben.id, kind=TokenKind.PERSONAL)
        async with store.new() as uow:
            for n, made in enumerate([*pats, session, theirs]):
                await uow.user_tokens.add(made, digest=digest_of(f"t{n}"), pepper_version=1)
            await uow.commit()
        async with store.new() as uow:
            tokens = uow.user_tokens
            got = (await tokens.get(ann.id, pats[0].id), await tokens.get(ben.id, pats[0].id))
            first = await tokens.list(ann.id, kind=TokenKind.PERSONAL, limit=2, after=None)
            rest = await tokens.list(ann.id, kind="personal", limit=2, after=first[-1].id)
            sessions = await tokens.list(ann.id, kind=TokenKind.SESSION, limit=10, after=None)
        assert (pats[0], None) == got
        assert (pats[:2], pats[2:], [session]) == (first, rest, sessions)

    async def test_revoke_revokes_a_live_token_once(self, store: Backend, build: Build):
        [ann] = await users(store, build)
        live, expired = token(build, ann.id), token(build, ann.id, expires_at=build.later(10))
        async with store.new() as uow:
            await uow.user_tokens.add(live, digest=digest_of("l"), pepper_version=1)
            await uow.user_tokens.add(expired, digest=digest_of("e"), pepper_version=1)
            await uow.commit()
        at = build.later(10)
        async with store.new() as uow:
            results = (
                await uow.user_tokens.revoke(live.id, at=at),
                await uow.user_tokens.revoke(live.id, at=build.later(20)),
                await uow.user_tokens.revoke(expired.id, at=at),
                await uow.user_tokens.revoke("tok_missing", at=at),
            )
            await uow.commit()
        async with store.new() as uow:
            stored = await uow.user_tokens.get(ann.id, live.id)
        assert (True, False, False, False) == results
        assert replace(live, revoked_at=at) == stored

    async def test_a_token_of_an_unknown_user_conflicts(self, store: Backend, build: Build):
        stray = token(build, "usr_missing")
        with pytest.raises(Conflict):
            await committed(
                store,
                lambda uow: uow.user_tokens.add(stray, digest=digest_of("t"), pepper_version=1),
            )


def _event(build: Build, tenant_id: str | None, action: str, **changes: object) -> AuditEvent:
    made = AuditEvent(
        tenant_id=tenant_id,
        at=build.at,
        action=action,
        actor=Ref("user", "usr_1"),
        target=Ref("key", "key_1"),
    )
    return replace(made, **changes)  # type: ignore[arg-type]  # test-only field overrides


class TestAudit:
    async def test_recorded_events_read_back_in_order(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        events = [
            _event(build, None, "user.login", target=None),
            _event(
                build,
                tenant_id,
                "key.updated",
                at=build.later(1),
                impersonator=Ref("user", "usr_root"),
                origin=RequestOrigin("2001:db8::1", "curl/8 ünïcode", "req_1"),
                outcome="failure",
                changed=("name", "meta"),
            ),
        ]
        async with store.new() as uow:
            for made in events:
                await uow.audit.record(made)
            await uow.commit()
        assert events == await store.audit_events()

    async def test_an_event_rolls_back_with_its_transaction(self, store: Backend, build: Build):
        async with store.new() as uow:
            await uow.audit.record(_event(build, None, "user.login"))
        assert [] == await store.audit_events()


class TestSystemKeys:
    def system_key(self, build: Build, tenant_id: str, owner: str, name: str) -> ApiKey:
        return build.key(tenant_id, system=True, recoverable=True, owner_id=owner, name=name)

    async def add(self, store: Backend, build: Build, key: ApiKey, sealed: bytes | None) -> None:
        async with store.new() as uow:
            await uow.keys(key.tenant_id).add(key, build.secret(key), sealed=sealed)
            await uow.commit()

    async def test_system_key_is_found_by_owner_and_name_with_its_sealed_secret(
        self, store: Backend, build: Build
    ):
        mine, theirs = await tenants(store, build, 2)
        key = self.system_key(build, mine, "usr_1", "billing")
        plain = build.key(mine, owner_id="usr_1", name="billing")
        await self.add(store, build, key, b"\x00sealed\xff")
        await self.add(store, build, plain, None)
        async with store.new() as uow:
            keys = uow.keys(mine)
            found = (
                await keys.system_key("usr_1", "billing"),
                await keys.system_key("usr_1", "other"),
                await keys.system_key("usr_2", "billing"),
                await uow.keys(theirs).system_key("usr_1", "billing"),
            )
            sealed = (
                await keys.sealed_secret(key.id),
                await keys.sealed_secret(plain.id),
                await uow.keys(theirs).sealed_secret(key.id),
            )
        assert (key, None, None, None) == found
        assert (b"\x00sealed\xff", None, None) == sealed

    async def test_a_second_system_key_of_an_owner_and_name_conflicts(
        self, store: Backend, build: Build
    ):
        mine, theirs = await tenants(store, build, 2)
        first = self.system_key(build, mine, "usr_1", "billing")
        await self.add(store, build, first, b"s")
        # Another tenant, another owner, another name, or not a system key: no conflict.
        for other in (
            self.system_key(build, theirs, "usr_1", "billing"),
            self.system_key(build, mine, "usr_2", "billing"),
            self.system_key(build, mine, "usr_1", "search"),
            build.key(mine, owner_id="usr_1", name="billing"),
            build.key(mine, owner_id="usr_1", name="billing"),
        ):
            await self.add(store, build, other, None)
        async with store.new() as uow:
            keys = uow.keys(mine)
            second = self.system_key(build, mine, "usr_1", "billing")
            with pytest.raises(Conflict):
                await keys.add(second, build.secret(second), sealed=b"t")
            winner = await keys.system_key("usr_1", "billing")  # the transaction goes on
            await uow.commit()
        async with store.new() as uow:
            assert None is await uow.keys(mine).get(second.id)
        assert first == winner

    async def test_a_system_key_committed_meanwhile_conflicts(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        first = self.system_key(build, tenant_id, "usr_1", "billing")
        second = self.system_key(build, tenant_id, "usr_1", "billing")
        async with store.new() as slow:
            keys = slow.keys(tenant_id)
            assert None is await keys.system_key("usr_1", "billing")
            await self.add(store, build, first, b"s")
            with pytest.raises(Conflict):
                await keys.add(second, build.secret(second), sealed=b"t")
            assert first == await keys.system_key("usr_1", "billing")

    async def test_removing_a_system_key_frees_its_slot(self, store: Backend, build: Build):
        [tenant_id] = await tenants(store, build)
        first = self.system_key(build, tenant_id, "usr_1", "billing")
        await self.add(store, build, first, b"s")
        async with store.new() as uow:
            assert await uow.keys(tenant_id).remove(first.id)
            await uow.commit()
        second = self.system_key(build, tenant_id, "usr_1", "billing")
        await self.add(store, build, second, b"t")
        async with store.new() as uow:
            assert second == await uow.keys(tenant_id).system_key("usr_1", "billing")
            assert None is await uow.keys(tenant_id).sealed_secret(first.id)


class TestTenantsAmong:
    async def test_list_among_restricts_to_those_ids(self, store: Backend, build: Build):
        made = await tenants(store, build, 4)
        async with store.new() as uow:
            listed = {
                "among": await uow.tenants.list(limit=10, after=None, among=[made[3], made[1]]),
                "paged": await uow.tenants.list(limit=1, after=made[1], among=made[1:]),
                "none": await uow.tenants.list(limit=10, after=None, among=[]),
                "unknown": await uow.tenants.list(limit=10, after=None, among=["ten_x"]),
                "all": await uow.tenants.list(limit=10, after=None, among=None),
            }
        assert {
            "among": [made[1], made[3]],
            "paged": [made[2]],
            "none": [],
            "unknown": [],
            "all": made,
        } == {name: [t.id for t in found] for name, found in listed.items()}


class TestCascades:
    async def test_deleting_a_tenant_takes_its_people_rows_but_not_users_tokens_or_audit(
        self, store: Backend, build: Build
    ):
        gone, kept = await tenants(store, build, 2)
        ann, ben = await users(store, build, 2)
        await join(store, build, gone, (ann, ADMIN), (ben, MEMBER))
        await join(store, build, kept, (ann, ADMIN))
        session = token(build, ann.id)
        key = build.key(gone, system=True, owner_id=ann.id, name="billing")
        async with store.new() as uow:
            await uow.invitations(gone).add(
                invitation(build, gone), digest=digest_of("i"), pepper_version=1
            )
            await uow.user_tokens.add(session, digest=digest_of("t"), pepper_version=1)
            await uow.keys(gone).add(key, build.secret(key), sealed=b"s")
            await uow.audit.record(_event(build, gone, "member.added"))
            await uow.commit()
        async with store.new() as uow:
            assert await uow.tenants.remove(gone)
            await uow.commit()
        async with store.new() as uow:
            after = (
                await uow.memberships(gone).list(limit=10, after=None),
                await uow.invitations(gone).list(limit=10, after=None),
                await uow.keys(gone).system_key(ann.id, "billing"),
                await uow.keys(gone).sealed_secret(key.id),
                await uow.users.memberships([ann.id, ben.id]),
                await uow.users.list(limit=10, after=None),
            )
            match = await uow.user_tokens.find([digest_of("t")])
        assert ([], [], None, None, [membership(kept, ann.id, ADMIN, build)], [ann, ben]) == after
        assert match is not None
        assert (session, (membership(kept, ann.id, ADMIN, build),)) == (
            match.token,
            match.memberships,
        )
        assert [gone] == [e.tenant_id for e in await store.audit_events()]


class TestSqlQueries:
    """What only the SQL store can show: how many statements a lookup takes."""

    async def test_token_find_is_one_query_plus_one_for_memberships(
        self, sql_engine: AsyncEngine, build: Build
    ):
        sessions = async_sessionmaker(sql_engine, expire_on_commit=False)
        store = Backend(sql_engine.dialect.name, lambda: SqlUnitOfWork(sessions))
        [tenant_id] = await tenants(store, build)
        [ann] = await users(store, build)
        await join(store, build, tenant_id, (ann, ADMIN))
        async with store.new() as uow:
            await uow.user_tokens.add(token(build, ann.id), digest=digest_of("t"), pepper_version=1)
            await uow.commit()
        async with store.new() as uow:
            with StatementLog(sql_engine) as log:
                match = await uow.user_tokens.find([digest_of("t"), digest_of("u")])
        assert match is not None
        assert 1 == len(match.memberships)
        assert 2 == log.count
