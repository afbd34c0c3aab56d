import itertools
from dataclasses import replace

import pytest

from keyrack.domain.models import KeyStatus, PermissionDef, Role
from keyrack.domain.permissions import Permission
from keyrack.errors import (
    ConcurrentUpdate,
    DuplicatePermission,
    DuplicateRole,
    InvalidInput,
    PermissionDenied,
    PermissionNotFound,
    RoleNotFound,
    TenantNotFound,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from keyrack.services.pagination import MAX_LIMIT
from keyrack.services.rbac import (
    UNSET,
    NewPermission,
    NewRole,
    RbacService,
    RoleChanges,
    check_permission_names,
    granted_permissions,
    resolve_key_grants,
)
from tests.fakes import (
    FakeKeyRepository,
    FakePermissionRepository,
    FakeRoleRepository,
    FakeServices,
    FakeUnitOfWork,
    tenant_principal,
)

pytestmark = pytest.mark.anyio

P = Permission

BAD_SLUGS = [
    pytest.param("", id="empty"),
    pytest.param("Chat.write", id="upper-case"),
    pytest.param("chat write", id="space"),
    pytest.param(" chat.write", id="leading-space"),
    pytest.param("chat..write", id="empty-segment"),
    pytest.param("chat.", id="trailing-dot"),
    pytest.param("*.chat", id="wildcard-first"),
    pytest.param("chat.*.write", id="wildcard-middle"),
    pytest.param("chat*", id="wildcard-in-segment"),
    pytest.param("and", id="keyword"),
    pytest.param("chat.write\x00", id="nul"),
    pytest.param("chät.write", id="non-ascii"),
    pytest.param("'; DROP TABLE permissions;--", id="sql"),
    pytest.param("a" * 256, id="too-long"),
]

GOOD_SLUGS = [
    pytest.param("chat.write", id="plain"),
    pytest.param("documents.*", id="wildcard"),
    pytest.param("*", id="everything"),
    pytest.param("a0_:-.b", id="every-character"),
    pytest.param("a" * 255, id="longest"),
]


def rbac_service(svc: FakeServices, uow_class: type[FakeUnitOfWork]) -> RbacService:
    """The service over the same fake database, with a unit of work that misbehaves."""
    return RbacService(
        uow=lambda: uow_class(svc.db), clock=svc.clock, entropy=svc.entropy, cache=svc.key_cache
    )


async def _key(svc: FakeServices, tenant_id: str, *, permissions=(), roles=()):
    key, _ = await svc.keys.create(
        OPERATOR,
        tenant_id,
        NewKey(name="k", permissions=tuple(permissions), roles=tuple(roles)),
    )
    return key


def _logged(svc: FakeServices) -> list[str]:
    """Owner ids in the committed invalidation log, in order."""
    return [owner for _, (owner, _) in sorted(svc.db.invalidations.items())]


def _cache_entry(svc: FakeServices, key_id: str) -> bytes:
    """Put a (stand-in) verify cache entry owned by ``key_id``; its digest."""
    digest = key_id.encode()
    svc.key_cache.put(digest, None, owner=key_id, expires_at=svc.clock.now() + 60)
    return digest


class TestCheckPermissionNames:
    @pytest.mark.parametrize("slug", GOOD_SLUGS)
    def test_accepts_permission_names(self, slug):
        assert (slug,) == check_permission_names([slug])

    @pytest.mark.parametrize("slug", BAD_SLUGS)
    def test_rejects_anything_else_naming_field_and_value(self, slug):
        with pytest.raises(InvalidInput) as caught:
            check_permission_names(["ok", slug], field="perms")

        assert "perms" == caught.value.details["field"]
        assert slug[:64] == str(caught.value.details["value"]).rstrip("…")

    def test_drops_duplicates_keeping_first_order(self):
        assert ("b", "a") == check_permission_names(["b", "a", "b"])

    def test_a_bare_string_is_refused_rather_than_split(self):
        with pytest.raises(InvalidInput, match="list"):
            check_permission_names("chat.write")

    def test_more_than_1000_are_refused(self):
        with pytest.raises(InvalidInput, match="1000"):
            check_permission_names([f"p{i}" for i in range(1001)])


class TestCreatePermission:
    async def test_creates_and_reads_back(self, svc, tenant):
        created = await svc.rbac.create_permission(
            OPERATOR, tenant.id, NewPermission(slug="chat.write", description="send messages")
        )

        assert created.id.startswith("perm_")
        assert (tenant.id, "chat.write", "send messages", to_datetime(svc.clock.now())) == (
            created.tenant_id,
            created.slug,
            created.description,
            created.created_at,
        )
        assert created == await svc.rbac.get_permission(OPERATOR, tenant.id, created.id)
        assert [created] == list((await svc.rbac.list_permissions(OPERATOR, tenant.id)).items)

    @pytest.mark.parametrize("slug", GOOD_SLUGS)
    async def test_accepts_wildcards_as_grantable_names(self, svc, tenant, slug):
        created = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug=slug))

        assert slug == created.slug

    @pytest.mark.parametrize("slug", BAD_SLUGS)
    async def test_bad_slug_is_invalid_and_writes_nothing(self, svc, tenant, slug):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput) as caught:
            await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug=slug))

        assert "slug" == caught.value.details["field"]
        assert before == svc.db.snapshot()

    async def test_long_description_is_invalid(self, svc, tenant):
        with pytest.raises(InvalidInput, match="description"):
            await svc.rbac.create_permission(
                OPERATOR, tenant.id, NewPermission(slug="a", description="d" * 1025)
            )

    async def test_duplicate_slug_conflicts(self, svc, tenant):
        await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="a.b"))

        with pytest.raises(DuplicatePermission):
            await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="a.b"))

    async def test_same_slug_in_another_tenant_is_fine(self, svc, tenant, other_tenant):
        mine = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="a"))
        theirs = await svc.rbac.create_permission(
            OPERATOR, other_tenant.id, NewPermission(slug="a")
        )

        assert mine.id != theirs.id

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.rbac.create_permission(OPERATOR, "ten_missing", NewPermission(slug="a"))

    async def test_another_tenants_principal_is_told_not_found(self, svc, tenant, other_tenant):
        actor = tenant_principal(other_tenant.id, P.KEYS_READ, P.KEYS_WRITE)

        with pytest.raises(TenantNotFound):
            await svc.rbac.create_permission(actor, tenant.id, NewPermission(slug="a"))

    async def test_needs_keys_write(self, svc, tenant):
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        with pytest.raises(PermissionDenied, match=r"keys\.write"):
            await svc.rbac.create_permission(reader, tenant.id, NewPermission(slug="a"))


class TestGetAndListPermissions:
    async def test_another_tenants_permission_is_not_found(self, svc, tenant, other_tenant):
        theirs = await svc.rbac.create_permission(
            OPERATOR, other_tenant.id, NewPermission(slug="a")
        )

        with pytest.raises(PermissionNotFound):
            await svc.rbac.get_permission(OPERATOR, tenant.id, theirs.id)

    async def test_get_in_unknown_tenant_is_tenant_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.rbac.get_permission(OPERATOR, "ten_missing", "perm_x")

    async def test_reader_may_read(self, svc, tenant):
        created = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="a"))
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        assert created == await svc.rbac.get_permission(reader, tenant.id, created.id)

    async def test_reading_needs_keys_read(self, svc, tenant):
        nobody = tenant_principal(tenant.id, P.USAGE_READ)

        with pytest.raises(PermissionDenied, match=r"keys\.read"):
            await svc.rbac.list_permissions(nobody, tenant.id)

    async def test_list_pages_through_this_tenants_permissions_only(
        self, svc, tenant, other_tenant
    ):
        made = []
        for slug in ("a", "b", "c", "d", "e"):
            made.append(
                await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug=slug))
            )
            svc.clock.advance(0.01)
        await svc.rbac.create_permission(OPERATOR, other_tenant.id, NewPermission(slug="z"))

        first = await svc.rbac.list_permissions(OPERATOR, tenant.id, limit=2)
        second = await svc.rbac.list_permissions(
            OPERATOR, tenant.id, limit=2, cursor=first.next_cursor
        )
        last = await svc.rbac.list_permissions(
            OPERATOR, tenant.id, limit=2, cursor=second.next_cursor
        )

        assert made == [*first.items, *second.items, *last.items]
        assert last.next_cursor is None

    async def test_foreign_cursor_is_invalid(self, svc, tenant):
        with pytest.raises(InvalidInput, match="cursor"):
            await svc.rbac.list_permissions(OPERATOR, tenant.id, cursor="key_whatever")

    async def test_list_in_unknown_tenant_is_tenant_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.rbac.list_permissions(OPERATOR, "ten_missing")


class TestDeletePermission:
    async def test_takes_it_off_roles_and_keys_and_drops_their_cache_entries(self, svc, tenant):
        await svc.rbac.create_role(
            OPERATOR, tenant.id, NewRole(name="writer", permissions=("chat.write", "chat.read"))
        )
        direct = await _key(svc, tenant.id, permissions=("chat.write", "x"))
        via_role = await _key(svc, tenant.id, roles=("writer",))
        unrelated = await _key(svc, tenant.id, permissions=("x",))
        digests = {k.id: _cache_entry(svc, k.id) for k in (direct, via_role, unrelated)}
        [permission] = await self._permissions(svc, tenant.id, "chat.write")
        logged = len(svc.db.invalidations)

        await svc.rbac.delete_permission(OPERATOR, tenant.id, permission.id)

        [role] = svc.db.roles.values()
        assert ("chat.read",) == role.permissions
        assert 2 == role.version
        assert ("x",) == svc.db.keys[direct.id].permissions
        assert direct.version + 1 == svc.db.keys[direct.id].version
        assert ("writer",) == svc.db.keys[via_role.id].roles
        assert {via_role.id, direct.id} == set(_logged(svc)[logged:])
        assert svc.key_cache.get(digests[direct.id]) is None
        assert svc.key_cache.get(digests[via_role.id]) is None
        assert svc.key_cache.get(digests[unrelated.id]) is not None
        assert permission.id not in svc.db.permissions
        with pytest.raises(PermissionNotFound):
            await svc.rbac.get_permission(OPERATOR, tenant.id, permission.id)

    async def test_finds_holders_among_more_than_a_page_of_roles(self, svc, tenant):
        for i in range(MAX_LIMIT):
            await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name=f"filler{i}"))
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="last", permissions=("p",)))
        holder = await _key(svc, tenant.id, roles=("last",))
        [permission] = await self._permissions(svc, tenant.id, "p")
        logged = len(svc.db.invalidations)

        await svc.rbac.delete_permission(OPERATOR, tenant.id, permission.id)

        assert [holder.id] == _logged(svc)[logged:]

    async def test_without_holders_logs_nothing(self, svc, tenant):
        permission = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="p"))
        logged = len(svc.db.invalidations)

        await svc.rbac.delete_permission(OPERATOR, tenant.id, permission.id)

        assert logged == len(svc.db.invalidations)
        assert {} == svc.db.permissions

    async def test_leaves_other_tenants_alone(self, svc, tenant, other_tenant):
        await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="r", permissions=("p",)))
        theirs = await _key(svc, other_tenant.id, permissions=("p",), roles=("r",))
        mine = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="p"))

        await svc.rbac.delete_permission(OPERATOR, tenant.id, mine.id)

        assert theirs == svc.db.keys[theirs.id]
        assert [("p",)] == [r.permissions for r in svc.db.roles.values()]
        assert ["p"] == [p.slug for p in svc.db.permissions.values()]

    async def test_another_tenants_permission_is_not_found_and_stays(
        self, svc, tenant, other_tenant
    ):
        theirs = await svc.rbac.create_permission(
            OPERATOR, other_tenant.id, NewPermission(slug="p")
        )

        with pytest.raises(PermissionNotFound):
            await svc.rbac.delete_permission(OPERATOR, tenant.id, theirs.id)

        assert theirs.id in svc.db.permissions

    async def test_needs_keys_write(self, svc, tenant):
        permission = await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="p"))

        with pytest.raises(PermissionDenied):
            await svc.rbac.delete_permission(
                tenant_principal(tenant.id, P.KEYS_READ), tenant.id, permission.id
            )

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.rbac.delete_permission(OPERATOR, "ten_missing", "perm_x")

    @staticmethod
    async def _permissions(svc: FakeServices, tenant_id: str, slug: str) -> list[PermissionDef]:
        page = await svc.rbac.list_permissions(OPERATOR, tenant_id, limit=MAX_LIMIT)
        return [p for p in page.items if p.slug == slug]


class TestResolveKeyGrants:
    ids = itertools.count(1)

    async def _resolve(self, svc, tenant_id, *, permissions=(), roles=()):
        async with svc.uow() as uow:
            await resolve_key_grants(
                uow,
                tenant_id,
                permissions=tuple(permissions),
                roles=tuple(roles),
                now=to_datetime(svc.clock.now()),
                new_id=lambda prefix: f"{prefix}_{next(self.ids):022d}",
            )
            await uow.commit()

    async def test_creates_missing_permissions_once_and_keeps_existing(self, svc, tenant):
        existing = await svc.rbac.create_permission(
            OPERATOR, tenant.id, NewPermission(slug="a", description="kept")
        )

        await self._resolve(svc, tenant.id, permissions=("a", "b.*", "b.*"))

        slugs = {p.slug: p for p in svc.db.permissions.values()}
        assert {"a", "b.*"} == set(slugs)
        assert existing == slugs["a"]
        assert (tenant.id, None) == (slugs["b.*"].tenant_id, slugs["b.*"].description)

    async def test_nothing_to_do_touches_nothing(self, svc, tenant):
        statements = svc.db.statements

        await self._resolve(svc, tenant.id)

        assert statements + 1 == svc.db.statements  # the commit only

    async def test_names_the_bad_permission(self, svc, tenant):
        with pytest.raises(InvalidInput) as caught:
            await self._resolve(svc, tenant.id, permissions=("ok", "Not OK"))

        assert ("permissions", "Not OK") == (
            caught.value.details["field"],
            caught.value.details["value"],
        )
        assert {} == svc.db.permissions

    async def test_names_the_missing_roles_and_creates_nothing(self, svc, tenant, other_tenant):
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="known"))
        await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="theirs"))
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="roles") as caught:
            await self._resolve(
                svc, tenant.id, permissions=("new.one",), roles=("known", "theirs", "ghost")
            )

        assert ("roles", ["theirs", "ghost"]) == (
            caught.value.details["field"],
            caught.value.details["missing"],
        )
        assert before == svc.db.snapshot()

    async def test_existing_roles_pass(self, svc, tenant):
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="known"))

        await self._resolve(svc, tenant.id, roles=("known", "known"))

    async def test_a_permission_created_concurrently_is_not_an_error(self, svc, tenant):
        class StaleReads(FakePermissionRepository):
            async def by_slugs(self, slugs):
                return []  # as if another transaction committed the slug after this read

        class Uow(FakeUnitOfWork):
            def permissions(self, tenant_id):
                return StaleReads(self, tenant_id)

        await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="a"))
        async with Uow(svc.db) as uow:
            await resolve_key_grants(
                uow,
                tenant.id,
                permissions=("a", "b"),
                roles=(),
                now=to_datetime(svc.clock.now()),
                new_id=lambda prefix: f"{prefix}_{next(self.ids):022d}",
            )
            await uow.commit()

        assert ["a", "b"] == sorted(p.slug for p in svc.db.permissions.values())


class TestGrantedPermissions:
    async def test_without_roles_is_the_direct_set_without_a_query(self, svc, tenant):
        async with svc.uow() as uow:
            statements = svc.db.statements
            granted = await granted_permissions(uow, tenant.id, ("a", "b"), ())

        assert frozenset({"a", "b"}) == granted
        assert statements == svc.db.statements

    async def test_unions_the_roles_permissions_and_ignores_missing_roles(
        self, svc, tenant, other_tenant
    ):
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="r1", permissions=("x",)))
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="r2", permissions=("y.*",)))
        await svc.rbac.create_role(
            OPERATOR, other_tenant.id, NewRole(name="r3", permissions=("z",))
        )

        async with svc.uow() as uow:
            granted = await granted_permissions(uow, tenant.id, ["a"], ["r1", "r2", "r3", "gone"])

        assert frozenset({"a", "x", "y.*"}) == granted


class TestCreateRole:
    async def test_creates_the_role_and_its_missing_permissions(self, svc, tenant):
        await svc.rbac.create_permission(OPERATOR, tenant.id, NewPermission(slug="chat.read"))

        role = await svc.rbac.create_role(
            OPERATOR,
            tenant.id,
            NewRole(
                name=" support ",
                description="help desk",
                permissions=("chat.read", "tickets.*", "chat.read"),
            ),
        )

        now = to_datetime(svc.clock.now())
        assert role.id.startswith("role_")
        assert (
            Role(
                id=role.id,
                tenant_id=tenant.id,
                name="support",
                description="help desk",
                permissions=("chat.read", "tickets.*"),
                created_at=now,
                updated_at=now,
                version=1,
            )
            == role
        )
        assert role == await svc.rbac.get_role(OPERATOR, tenant.id, role.id)
        assert ["chat.read", "tickets.*"] == sorted(p.slug for p in svc.db.permissions.values())

    async def test_duplicate_name_conflicts_and_creates_no_permission(self, svc, tenant):
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="admin"))

        with pytest.raises(DuplicateRole):
            await svc.rbac.create_role(
                OPERATOR, tenant.id, NewRole(name="admin", permissions=("new",))
            )

        assert {} == svc.db.permissions

    @pytest.mark.parametrize("slug", BAD_SLUGS)
    async def test_bad_permission_is_invalid_and_writes_nothing(self, svc, tenant, slug):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput) as caught:
            await svc.rbac.create_role(
                OPERATOR, tenant.id, NewRole(name="r", permissions=("ok", slug))
            )

        assert "permissions" == caught.value.details["field"]
        assert before == svc.db.snapshot()

    @pytest.mark.parametrize(
        "spec",
        [
            pytest.param(NewRole(name=""), id="empty-name"),
            pytest.param(NewRole(name="   "), id="blank-name"),
            pytest.param(NewRole(name="r" * 256), id="long-name"),
            pytest.param(NewRole(name="a\nb"), id="control-character"),
            pytest.param(NewRole(name="r", description="d" * 1025), id="long-description"),
        ],
    )
    async def test_bad_fields_are_invalid(self, svc, tenant, spec):
        with pytest.raises(InvalidInput):
            await svc.rbac.create_role(OPERATOR, tenant.id, spec)

    async def test_needs_keys_write_in_a_visible_tenant(self, svc, tenant, other_tenant):
        with pytest.raises(PermissionDenied):
            await svc.rbac.create_role(
                tenant_principal(tenant.id, P.KEYS_READ), tenant.id, NewRole(name="r")
            )
        with pytest.raises(TenantNotFound):
            await svc.rbac.create_role(
                tenant_principal(other_tenant.id, P.KEYS_WRITE), tenant.id, NewRole(name="r")
            )
        with pytest.raises(TenantNotFound):
            await svc.rbac.create_role(OPERATOR, "ten_missing", NewRole(name="r"))


class TestGetAndListRoles:
    async def test_another_tenants_role_is_not_found(self, svc, tenant, other_tenant):
        theirs = await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="r"))

        with pytest.raises(RoleNotFound):
            await svc.rbac.get_role(OPERATOR, tenant.id, theirs.id)
        with pytest.raises(TenantNotFound):
            await svc.rbac.get_role(
                tenant_principal(tenant.id, P.KEYS_READ), other_tenant.id, theirs.id
            )

    async def test_list_pages_through_this_tenants_roles_only(self, svc, tenant, other_tenant):
        made = []
        for name in ("a", "b", "c"):
            made.append(await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name=name)))
            svc.clock.advance(0.01)
        await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="z"))

        first = await svc.rbac.list_roles(OPERATOR, tenant.id, limit=2)
        rest = await svc.rbac.list_roles(OPERATOR, tenant.id, limit=2, cursor=first.next_cursor)

        assert made == [*first.items, *rest.items]
        assert rest.next_cursor is None

    async def test_list_checks_limit_tenant_and_permission(self, svc, tenant):
        with pytest.raises(InvalidInput, match="limit"):
            await svc.rbac.list_roles(OPERATOR, tenant.id, limit=0)
        with pytest.raises(TenantNotFound):
            await svc.rbac.list_roles(OPERATOR, "ten_missing")
        with pytest.raises(PermissionDenied):
            await svc.rbac.list_roles(tenant_principal(tenant.id), tenant.id)


class TestUpdateRole:
    async def _setup(self, svc, tenant_id):
        role = await svc.rbac.create_role(
            OPERATOR, tenant_id, NewRole(name="writer", description="d", permissions=("a", "b"))
        )
        holder = await _key(svc, tenant_id, roles=("writer",))
        other = await _key(svc, tenant_id)
        svc.clock.advance(5)
        return role, holder, other

    async def test_description_only_changes_no_key(self, svc, tenant):
        role, holder, _ = await self._setup(svc, tenant.id)
        digest = _cache_entry(svc, holder.id)
        logged = len(svc.db.invalidations)

        updated = await svc.rbac.update_role(
            OPERATOR, tenant.id, role.id, RoleChanges(description="new")
        )

        assert (
            replace(role, description="new", version=2, updated_at=to_datetime(svc.clock.now()))
            == updated
        )
        assert updated == svc.db.roles[role.id]
        assert logged == len(svc.db.invalidations)
        assert svc.key_cache.get(digest) is not None

    async def test_none_clears_the_description_and_unset_keeps_the_rest(self, svc, tenant):
        role, _, _ = await self._setup(svc, tenant.id)

        updated = await svc.rbac.update_role(
            OPERATOR,
            tenant.id,
            role.id,
            RoleChanges(description=None, name=UNSET, permissions=UNSET),
        )

        assert (None, "writer", ("a", "b")) == (
            updated.description,
            updated.name,
            updated.permissions,
        )

    async def test_new_permissions_reach_the_holders_at_once(self, svc, tenant):
        role, holder, other = await self._setup(svc, tenant.id)
        digests = {k.id: _cache_entry(svc, k.id) for k in (holder, other)}
        logged = len(svc.db.invalidations)

        updated = await svc.rbac.update_role(
            OPERATOR, tenant.id, role.id, RoleChanges(permissions=("b", "c.*"))
        )

        assert ("b", "c.*") == updated.permissions
        assert [holder.id] == _logged(svc)[logged:]
        assert svc.key_cache.get(digests[holder.id]) is None
        assert svc.key_cache.get(digests[other.id]) is not None
        assert {"a", "b", "c.*"} == {p.slug for p in svc.db.permissions.values()}
        assert holder == svc.db.keys[holder.id]  # the key row itself is unchanged

    async def test_same_permissions_in_another_order_change_no_key(self, svc, tenant):
        role, _, _ = await self._setup(svc, tenant.id)
        logged = len(svc.db.invalidations)

        await svc.rbac.update_role(
            OPERATOR, tenant.id, role.id, RoleChanges(permissions=("b", "a"))
        )

        assert logged == len(svc.db.invalidations)

    async def test_rename_is_written_to_every_holder(self, svc, tenant, other_tenant):
        role, holder, other = await self._setup(svc, tenant.id)
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="reader"))
        both = await _key(svc, tenant.id, roles=("reader", "writer"))
        await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="writer"))
        theirs = await _key(svc, other_tenant.id, roles=("writer",))
        logged = len(svc.db.invalidations)

        updated = await svc.rbac.update_role(
            OPERATOR, tenant.id, role.id, RoleChanges(name="author")
        )

        now = to_datetime(svc.clock.now())
        assert "author" == updated.name
        stored = svc.db.keys[holder.id]
        assert (("author",), holder.version + 1, now) == (
            stored.roles,
            stored.version,
            stored.updated_at,
        )
        assert ("reader", "author") == svc.db.keys[both.id].roles
        assert other == svc.db.keys[other.id]
        assert theirs == svc.db.keys[theirs.id]
        assert {holder.id, both.id} == set(_logged(svc)[logged:])

    async def test_rename_to_a_taken_name_conflicts_and_changes_nothing(self, svc, tenant):
        role, _, _ = await self._setup(svc, tenant.id)
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="reader"))
        before = svc.db.snapshot()

        with pytest.raises(DuplicateRole):
            await svc.rbac.update_role(OPERATOR, tenant.id, role.id, RoleChanges(name="reader"))

        assert before == svc.db.snapshot()

    @pytest.mark.parametrize(
        "changes",
        [
            pytest.param(RoleChanges(name=""), id="empty-name"),
            pytest.param(RoleChanges(description="d" * 1025), id="long-description"),
            pytest.param(RoleChanges(permissions=("Bad",)), id="bad-permission"),
        ],
    )
    async def test_bad_fields_are_invalid_and_change_nothing(self, svc, tenant, changes):
        role, _, _ = await self._setup(svc, tenant.id)
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput):
            await svc.rbac.update_role(OPERATOR, tenant.id, role.id, changes)

        assert before == svc.db.snapshot()

    async def test_another_tenants_role_is_not_found(self, svc, tenant, other_tenant):
        theirs = await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="r"))

        with pytest.raises(RoleNotFound):
            await svc.rbac.update_role(OPERATOR, tenant.id, theirs.id, RoleChanges(name="x"))

        assert "r" == svc.db.roles[theirs.id].name

    async def test_needs_keys_write_in_a_visible_tenant(self, svc, tenant):
        with pytest.raises(PermissionDenied):
            await svc.rbac.update_role(
                tenant_principal(tenant.id, P.KEYS_READ), tenant.id, "role_x", RoleChanges()
            )
        with pytest.raises(TenantNotFound):
            await svc.rbac.update_role(OPERATOR, "ten_missing", "role_x", RoleChanges())

    async def test_a_concurrent_role_change_wins(self, svc, tenant):
        class Losing(FakeRoleRepository):
            async def update(self, role, *, expected_version):
                return False

        class Uow(FakeUnitOfWork):
            def roles(self, tenant_id):
                return Losing(self, tenant_id)

        role, _, _ = await self._setup(svc, tenant.id)
        before = svc.db.snapshot()

        with pytest.raises(ConcurrentUpdate):
            await rbac_service(svc, Uow).update_role(
                OPERATOR, tenant.id, role.id, RoleChanges(description="x")
            )

        assert before == svc.db.snapshot()

    async def test_a_concurrent_change_of_a_renamed_key_wins(self, svc, tenant):
        class Losing(FakeKeyRepository):
            async def update(self, key, *, expected_version):
                return False

        class Uow(FakeUnitOfWork):
            def keys(self, tenant_id):
                return Losing(self, tenant_id)

        role, _, _ = await self._setup(svc, tenant.id)
        before = svc.db.snapshot()

        with pytest.raises(ConcurrentUpdate):
            await rbac_service(svc, Uow).update_role(
                OPERATOR, tenant.id, role.id, RoleChanges(name="x")
            )

        assert before == svc.db.snapshot()

    async def test_a_key_deleted_meanwhile_is_skipped_by_a_rename(self, svc, tenant):
        class Vanishing(FakeKeyRepository):
            async def get(self, key_id, *, for_update=False):
                return None  # deleted by another transaction after ``ids_with_role``

        class Uow(FakeUnitOfWork):
            def keys(self, tenant_id):
                return Vanishing(self, tenant_id)

        role, holder, _ = await self._setup(svc, tenant.id)

        updated = await rbac_service(svc, Uow).update_role(
            OPERATOR, tenant.id, role.id, RoleChanges(name="x")
        )

        assert "x" == updated.name
        assert ("writer",) == svc.db.keys[holder.id].roles


class TestDeleteRole:
    async def test_takes_it_off_every_key_and_drops_their_cache_entries(
        self, svc, tenant, other_tenant
    ):
        role = await svc.rbac.create_role(
            OPERATOR, tenant.id, NewRole(name="r", permissions=("p",))
        )
        await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="s"))
        holder = await _key(svc, tenant.id, roles=("s", "r"), permissions=("q",))
        other = await _key(svc, tenant.id, roles=("s",))
        await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="r"))
        theirs = await _key(svc, other_tenant.id, roles=("r",))
        digests = {k.id: _cache_entry(svc, k.id) for k in (holder, other)}
        logged = len(svc.db.invalidations)

        await svc.rbac.delete_role(OPERATOR, tenant.id, role.id)

        stored = svc.db.keys[holder.id]
        assert (("s",), ("q",), holder.version + 1) == (
            stored.roles,
            stored.permissions,
            stored.version,
        )
        assert other == svc.db.keys[other.id]
        assert theirs == svc.db.keys[theirs.id]
        assert [holder.id] == _logged(svc)[logged:]
        assert svc.key_cache.get(digests[holder.id]) is None
        assert svc.key_cache.get(digests[other.id]) is not None
        assert role.id not in svc.db.roles
        assert "p" in {p.slug for p in svc.db.permissions.values()}  # permissions stay
        assert KeyStatus.ACTIVE is stored.status

    async def test_without_holders_logs_nothing(self, svc, tenant):
        role = await svc.rbac.create_role(OPERATOR, tenant.id, NewRole(name="r"))
        logged = len(svc.db.invalidations)

        await svc.rbac.delete_role(OPERATOR, tenant.id, role.id)

        assert logged == len(svc.db.invalidations)
        assert {} == svc.db.roles

    async def test_another_tenants_role_is_not_found_and_stays(self, svc, tenant, other_tenant):
        theirs = await svc.rbac.create_role(OPERATOR, other_tenant.id, NewRole(name="r"))

        with pytest.raises(RoleNotFound):
            await svc.rbac.delete_role(OPERATOR, tenant.id, theirs.id)

        assert theirs.id in svc.db.roles

    async def test_needs_keys_write_in_a_visible_tenant(self, svc, tenant):
        with pytest.raises(PermissionDenied):
            await svc.rbac.delete_role(
                tenant_principal(tenant.id, P.KEYS_READ), tenant.id, "role_x"
            )
        with pytest.raises(TenantNotFound):
            await svc.rbac.delete_role(OPERATOR, "ten_missing", "role_x")
