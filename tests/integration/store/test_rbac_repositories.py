"""Permission and role repositories, and the key methods they need, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from keyrack.domain.models import ApiKey, PermissionDef, Role
from keyrack.errors import DuplicatePermission, DuplicateRole
from keyrack.store.tables import PermissionRow, RoleRow
from keyrack.store.uow import SqlUnitOfWork
from tests.integration.store.builders import Build

pytestmark = pytest.mark.anyio

NewUow = Callable[[], SqlUnitOfWork]

# Role names are free text (any name without control characters), so they meet the store's
# JSON prefilter in every shape: LIKE wildcards, JSON escapes, non-ASCII (no prefilter at all).
TRICKY_NAMES = [
    pytest.param("admin", id="plain"),
    pytest.param("100%", id="like-percent"),
    pytest.param("a_b", id="like-underscore"),
    pytest.param("a/b", id="like-escape-character"),
    pytest.param('say "hi"', id="quotes"),
    pytest.param("back\\slash", id="backslash"),
    pytest.param("名前 🔑 ключ ñ", id="unicode"),
    pytest.param("\u202eevil\u202c", id="bidi-override"),
    pytest.param("Robert'); DROP TABLE roles;--", id="sql-injection"),
]


@pytest.fixture
def build() -> Build:
    return Build()


def permission(build: Build, tenant_id: str, slug: str, **changes: object) -> PermissionDef:
    made = PermissionDef(
        id=build.id("perm"), tenant_id=tenant_id, slug=slug, description=None, created_at=build.at
    )
    return replace(made, **changes)  # type: ignore[arg-type]  # test-only field overrides


def role(build: Build, tenant_id: str, name: str, permissions: Sequence[str] = ()) -> Role:
    return Role(
        id=build.id("role"),
        tenant_id=tenant_id,
        name=name,
        description=None,
        permissions=tuple(permissions),
        created_at=build.at,
        updated_at=build.at,
    )


async def tenants(new_uow: NewUow, build: Build, count: int = 1) -> list[str]:
    made = [build.tenant() for _ in range(count)]
    async with new_uow() as uow:
        for tenant in made:
            await uow.tenants.add(tenant)
        await uow.commit()
    return [t.id for t in made]


async def add_keys(new_uow: NewUow, build: Build, keys: Sequence[ApiKey]) -> None:
    async with new_uow() as uow:
        for key in keys:
            await uow.keys(key.tenant_id).add(key, build.secret(key))
        await uow.commit()


class TestPermissionRepository:
    async def test_added_permission_reads_back_equal(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = permission(build, tenant_id, "documents.*", description="名前 ' OR 1=1 --")
        async with new_uow() as uow:
            await uow.permissions(tenant_id).add(made)
            await uow.commit()
        async with new_uow() as uow:
            assert made == await uow.permissions(tenant_id).get(made.id)
            assert [made] == await uow.permissions(tenant_id).by_slugs(["documents.*", "x"])

    async def test_another_tenant_cannot_see_it(self, new_uow: NewUow, build: Build) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        made = permission(build, theirs, "a")
        async with new_uow() as uow:
            await uow.permissions(theirs).add(made)
            await uow.commit()
        async with new_uow() as uow:
            repo = uow.permissions(mine)
            seen = (
                await repo.get(made.id),
                await repo.by_slugs(["a"]),
                await repo.list(limit=10, after=None),
                await repo.remove(made.id),
            )
            await uow.commit()
        async with new_uow() as uow:
            still = await uow.permissions(theirs).get(made.id)
        assert (None, [], [], False) == seen
        assert made == still

    async def test_by_slugs_of_nothing_is_empty(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        async with new_uow() as uow:
            assert [] == await uow.permissions(tenant_id).by_slugs([])

    async def test_duplicate_slug_raises_and_the_transaction_goes_on(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        first = permission(build, tenant_id, "a")
        other = permission(build, tenant_id, "b")
        async with new_uow() as uow:
            repo = uow.permissions(tenant_id)
            await repo.add(first)
            with pytest.raises(DuplicatePermission):
                await repo.add(permission(build, tenant_id, "a"))
            await repo.add(other)
            await uow.commit()
        async with new_uow() as uow:
            assert [first, other] == await uow.permissions(tenant_id).list(limit=10, after=None)

    async def test_a_slug_committed_by_another_transaction_meanwhile_is_a_duplicate(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        winner = permission(build, tenant_id, "a")
        async with new_uow() as slow:
            repo = slow.permissions(tenant_id)
            assert [] == await repo.by_slugs(["a"])
            async with new_uow() as fast:
                await fast.permissions(tenant_id).add(winner)
                await fast.commit()
            with pytest.raises(DuplicatePermission):
                await repo.add(permission(build, tenant_id, "a"))
            await repo.add(permission(build, tenant_id, "b"))
            await slow.commit()
        async with new_uow() as uow:
            stored = await uow.permissions(tenant_id).list(limit=10, after=None)
        assert ["a", "b"] == [p.slug for p in stored]
        assert winner == stored[0]

    async def test_refuses_a_permission_of_another_tenant(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        async with new_uow() as uow:
            with pytest.raises(ValueError, match="another tenant"):
                await uow.permissions(mine).add(permission(build, theirs, "a"))

    async def test_list_orders_by_id_after_the_cursor(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = [permission(build, tenant_id, f"p{i}") for i in range(5)]
        async with new_uow() as uow:
            for item in reversed(made):
                await uow.permissions(tenant_id).add(item)
            await uow.commit()
        async with new_uow() as uow:
            repo = uow.permissions(tenant_id)
            first = await repo.list(limit=2, after=None)
            rest = await repo.list(limit=10, after=first[-1].id)
        assert made == [*first, *rest]

    async def test_remove_reports_whether_it_existed(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = permission(build, tenant_id, "a")
        async with new_uow() as uow:
            await uow.permissions(tenant_id).add(made)
            await uow.commit()
        async with new_uow() as uow:
            removed = await uow.permissions(tenant_id).remove(made.id)
            again = await uow.permissions(tenant_id).remove(made.id)
            await uow.commit()
        async with new_uow() as uow:
            assert (True, False, None) == (
                removed,
                again,
                await uow.permissions(tenant_id).get(made.id),
            )


class TestRoleRepository:
    async def test_added_role_reads_back_equal(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = replace(
            role(build, tenant_id, "support", ["tickets.*", "chat.read"]),
            description="help desk",
            version=4,
            updated_at=build.later(5),
        )
        async with new_uow() as uow:
            await uow.roles(tenant_id).add(made)
            await uow.commit()
        async with new_uow() as uow:
            assert made == await uow.roles(tenant_id).get(made.id)

    @pytest.mark.parametrize("name", TRICKY_NAMES)
    async def test_by_names_finds_exact_names(
        self, new_uow: NewUow, build: Build, name: str
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = role(build, tenant_id, name)
        decoy = role(build, tenant_id, name + "x")
        async with new_uow() as uow:
            await uow.roles(tenant_id).add(made)
            await uow.roles(tenant_id).add(decoy)
            await uow.commit()
        async with new_uow() as uow:
            assert [made] == await uow.roles(tenant_id).by_names([name, "missing"])
            assert [] == await uow.roles(tenant_id).by_names([])

    async def test_another_tenant_cannot_see_or_change_it(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        made = role(build, theirs, "r", ["p"])
        async with new_uow() as uow:
            await uow.roles(theirs).add(made)
            await uow.commit()
        async with new_uow() as uow:
            repo = uow.roles(mine)
            seen = (
                await repo.get(made.id),
                await repo.by_names(["r"]),
                await repo.list(limit=10, after=None),
                await repo.update(replace(made, name="x", version=2), expected_version=1),
                await repo.remove(made.id),
            )
            await repo.strip_permission("p")
            await uow.commit()
        async with new_uow() as uow:
            still = await uow.roles(theirs).get(made.id)
        assert (None, [], [], False, False) == seen
        assert made == still

    async def test_duplicate_name_raises_duplicate_role(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        async with new_uow() as uow:
            await uow.roles(tenant_id).add(role(build, tenant_id, "admin"))
            await uow.commit()
        with pytest.raises(DuplicateRole):
            async with new_uow() as uow:
                await uow.roles(tenant_id).add(role(build, tenant_id, "admin"))

    async def test_refuses_a_role_of_another_tenant(self, new_uow: NewUow, build: Build) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        async with new_uow() as uow:
            with pytest.raises(ValueError, match="another tenant"):
                await uow.roles(mine).add(role(build, theirs, "a"))

    async def test_update_is_a_compare_and_set_on_version(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = role(build, tenant_id, "r", ["a"])
        async with new_uow() as uow:
            await uow.roles(tenant_id).add(made)
            await uow.commit()
        changed = replace(
            made,
            name="renamed",
            description="d",
            permissions=("b", "a"),
            version=2,
            updated_at=build.later(9),
        )
        async with new_uow() as uow:
            stale = await uow.roles(tenant_id).update(changed, expected_version=7)
            written = await uow.roles(tenant_id).update(changed, expected_version=1)
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.roles(tenant_id).get(made.id)
        assert (False, True, changed) == (stale, written, stored)

    async def test_rename_to_a_taken_name_raises_duplicate_role(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        first, second = role(build, tenant_id, "a"), role(build, tenant_id, "b")
        async with new_uow() as uow:
            await uow.roles(tenant_id).add(first)
            await uow.roles(tenant_id).add(second)
            await uow.commit()
        with pytest.raises(DuplicateRole):
            async with new_uow() as uow:
                await uow.roles(tenant_id).update(
                    replace(second, name="a", version=2), expected_version=1
                )
        async with new_uow() as uow:
            assert second == await uow.roles(tenant_id).get(second.id)

    async def test_list_and_remove(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await tenants(new_uow, build)
        made = [role(build, tenant_id, f"r{i}") for i in range(3)]
        async with new_uow() as uow:
            for item in reversed(made):
                await uow.roles(tenant_id).add(item)
            await uow.commit()
        async with new_uow() as uow:
            repo = uow.roles(tenant_id)
            first = await repo.list(limit=2, after=None)
            rest = await repo.list(limit=2, after=first[-1].id)
            removed = await repo.remove(made[1].id)
            again = await repo.remove(made[1].id)
            await uow.commit()
        async with new_uow() as uow:
            left = await uow.roles(tenant_id).list(limit=10, after=None)
        assert made == [*first, *rest]
        assert (True, False) == (removed, again)
        assert [made[0], made[2]] == left

    async def test_strip_permission_takes_exactly_that_slug_off_every_role(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await tenants(new_uow, build)
        holder = role(build, tenant_id, "holder", ["x", "a_b", "y"])
        decoys = [
            role(build, tenant_id, "like", ["axb"]),  # '_' must not act as a LIKE wildcard
            role(build, tenant_id, "prefix", ["a_b.c", "a_bc"]),
            role(build, tenant_id, "escaped", ['x","a_b']),  # the text matches, the list not
            role(build, tenant_id, "empty"),
        ]
        async with new_uow() as uow:
            for item in (holder, *decoys):
                await uow.roles(tenant_id).add(item)
            await uow.commit()
        async with new_uow() as uow:
            # Read first: the strip must still write the freshly locked rows.
            await uow.roles(tenant_id).list(limit=10, after=None)
            await uow.roles(tenant_id).strip_permission("a_b")
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.roles(tenant_id).get(holder.id)
            kept = [await uow.roles(tenant_id).get(d.id) for d in decoys]
        assert stored is not None
        assert (("x", "y"), 2) == (stored.permissions, stored.version)
        assert stored.updated_at != holder.updated_at  # the wall clock: the port passes no time
        assert decoys == kept

    async def test_tenant_removal_cascades_to_permissions_and_roles(
        self, new_uow: NewUow, build: Build
    ) -> None:
        doomed, kept = await tenants(new_uow, build, 2)
        async with new_uow() as uow:
            for tenant_id in (doomed, kept):
                await uow.permissions(tenant_id).add(permission(build, tenant_id, "p"))
                await uow.roles(tenant_id).add(role(build, tenant_id, "r", ["p"]))
            await uow.commit()
        async with new_uow() as uow:
            await uow.tenants.remove(doomed)
            await uow.commit()
        async with new_uow() as uow:
            counts = [
                await uow.session.scalar(
                    select(func.count()).select_from(row).where(row.tenant_id == tenant_id)
                )
                for tenant_id in (doomed, kept)
                for row in (PermissionRow, RoleRow)
            ]
        assert [0, 0, 1, 1] == counts


class TestKeyGrants:
    """``SqlKeyRepository.ids_with_role``, ``strip_role`` and ``strip_permission``."""

    @pytest.mark.parametrize("name", TRICKY_NAMES)
    async def test_ids_with_role_matches_the_exact_name_only(
        self, new_uow: NewUow, build: Build, name: str
    ) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        holders = [
            build.key(mine, roles=(name,)),
            build.key(mine, roles=("other", name)),
        ]
        decoys = [
            build.key(mine, roles=(name + "s",)),
            build.key(mine, roles=("x" + name,)),
            build.key(mine, roles=(f'a","{name}',)),  # the quoted name inside another string
            build.key(mine, permissions=(name,)),
            build.key(mine),
            build.key(theirs, roles=(name,)),
        ]
        await add_keys(new_uow, build, [*holders, *decoys])
        async with new_uow() as uow:
            found = await uow.keys(mine).ids_with_role(name)
        assert [k.id for k in holders] == found

    @pytest.mark.parametrize("name", TRICKY_NAMES)
    async def test_strip_role_removes_it_from_holders_only(
        self, new_uow: NewUow, build: Build, name: str
    ) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        holder = build.key(mine, roles=("first", name, "last"), permissions=(name,))
        decoys = [
            build.key(mine, roles=(name + "s", f'a","{name}')),
            build.key(theirs, roles=(name,)),
        ]
        await add_keys(new_uow, build, [holder, *decoys])
        async with new_uow() as uow:
            await uow.keys(mine).get(holder.id)  # loaded before: the strip must still write it
            changed = await uow.keys(mine).strip_role(name)
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(mine).get(holder.id)
            kept = [await uow.keys(d.tenant_id).get(d.id) for d in decoys]
        assert [holder.id] == changed
        assert stored is not None
        assert (("first", "last"), (name,), holder.version + 1) == (
            stored.roles,
            stored.permissions,
            stored.version,
        )
        assert stored.updated_at != holder.updated_at  # the wall clock: the port passes no time
        assert decoys == kept

    async def test_strip_permission_removes_the_direct_permission_only(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await tenants(new_uow, build, 2)
        holders = [
            build.key(mine, permissions=("chat.write", "chat.read")),
            build.key(mine, permissions=("chat.write",), roles=("chat.write",)),
        ]
        decoys = [
            build.key(mine, permissions=("chat.writer", "chat.*")),
            build.key(mine, roles=("chat.write",)),
            build.key(theirs, permissions=("chat.write",)),
        ]
        await add_keys(new_uow, build, [*holders, *decoys])
        async with new_uow() as uow:
            changed = await uow.keys(mine).strip_permission("chat.write")
            nothing = await uow.keys(mine).strip_permission("never.granted")
            await uow.commit()
        async with new_uow() as uow:
            stored = [await uow.keys(mine).get(k.id) for k in holders]
            kept = [await uow.keys(d.tenant_id).get(d.id) for d in decoys]
        assert [k.id for k in holders] == changed
        assert [] == nothing
        assert [("chat.read",), ()] == [k.permissions for k in stored if k is not None]
        assert ("chat.write",) == (stored[1].roles if stored[1] else None)
        assert decoys == kept
