import pytest

from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.verification import Outcome
from keyrack.errors import (
    AuthenticationFailed,
    DuplicateSlug,
    InvalidInput,
    PermissionDenied,
    TenantNotFound,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from keyrack.services.tenants import TenantChanges
from tests.fakes import tenant_principal

pytestmark = pytest.mark.anyio

P = Permission


class TestCreate:
    async def test_defaults_slug_from_name_and_prefix_kr(self, svc):
        tenant = await svc.tenants.create(OPERATOR, name="Acme Corp!")

        assert ("Acme Corp!", "acme-corp", "kr") == (tenant.name, tenant.slug, tenant.key_prefix)
        assert to_datetime(svc.clock.now()) == tenant.created_at == tenant.updated_at
        assert tenant.id.startswith("ten_")
        assert {tenant.id: tenant} == svc.db.tenants

    async def test_keeps_an_explicit_slug_and_prefix(self, svc):
        tenant = await svc.tenants.create(
            OPERATOR, name="Acme", slug="acme-eu", key_prefix="sk_live"
        )

        assert ("acme-eu", "sk_live") == (tenant.slug, tenant.key_prefix)

    @pytest.mark.parametrize(
        "prefix",
        ["krroot", "krroot_live", "SK", "k", "sk-live", "a" * 17],
        ids=["root", "root-env", "uppercase", "short", "dash", "long"],
    )
    async def test_invalid_prefix_is_rejected(self, svc, prefix):
        with pytest.raises(InvalidInput, match="key_prefix"):
            await svc.tenants.create(OPERATOR, name="Acme", key_prefix=prefix)

        assert {} == svc.db.tenants

    async def test_name_without_a_slug_needs_one(self, svc):
        with pytest.raises(InvalidInput, match="slug"):
            await svc.tenants.create(OPERATOR, name="!!!")

        tenant = await svc.tenants.create(OPERATOR, name="!!!", slug="bang")
        assert "bang" == tenant.slug

    async def test_taken_slug_is_a_conflict_and_changes_nothing(self, svc):
        await svc.tenants.create(OPERATOR, name="Acme")
        before = svc.db.snapshot()

        with pytest.raises(DuplicateSlug):
            await svc.tenants.create(OPERATOR, name="ACME")

        assert before == svc.db.snapshot()

    async def test_tenant_scoped_caller_is_denied(self, svc):
        tenant = await svc.tenants.create(OPERATOR, name="Acme")

        with pytest.raises(PermissionDenied):
            await svc.tenants.create(tenant_principal(tenant.id, P.TENANTS_WRITE), name="B")

    async def test_platform_caller_without_tenants_write_is_denied(self, svc):
        platform_reader = Principal(
            kind="service_account", id="sa", tenant_id=None, permissions=frozenset({P.TENANTS_READ})
        )

        with pytest.raises(PermissionDenied):
            await svc.tenants.create(platform_reader, name="Acme")


class TestGet:
    async def test_returns_the_tenant(self, svc, tenant):
        assert tenant == await svc.tenants.get(OPERATOR, tenant.id)

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.tenants.get(OPERATOR, "ten_missing")

    async def test_tenant_scoped_caller_sees_only_its_own(self, svc, tenant, other_tenant):
        reader = tenant_principal(tenant.id, P.TENANTS_READ)

        assert tenant == await svc.tenants.get(reader, tenant.id)
        with pytest.raises(TenantNotFound):
            await svc.tenants.get(reader, other_tenant.id)


class TestList:
    async def test_platform_caller_pages_through_every_tenant(self, svc):
        made = [await svc.tenants.create(OPERATOR, name=f"T{i}") for i in range(3)]

        first = await svc.tenants.list(OPERATOR, limit=2)
        second = await svc.tenants.list(OPERATOR, limit=2, cursor=first.next_cursor)

        assert made == [*first.items, *second.items]
        assert made[1].id == first.next_cursor
        assert second.next_cursor is None

    async def test_tenant_scoped_caller_lists_only_its_own(self, svc, tenant, other_tenant):
        page = await svc.tenants.list(tenant_principal(other_tenant.id, P.TENANTS_READ))

        assert [other_tenant] == list(page.items)

    async def test_cursor_of_another_type_is_rejected(self, svc, tenant):
        with pytest.raises(InvalidInput):
            await svc.tenants.list(OPERATOR, cursor="key_035WfsHchVmHxZxco4JWA6")


class TestUpdate:
    async def test_changes_only_the_given_fields(self, svc, tenant):
        svc.clock.advance(10)

        updated = await svc.tenants.update(OPERATOR, tenant.id, TenantChanges(name="Acme Inc"))

        assert ("Acme Inc", "acme", "kr", tenant.created_at) == (
            updated.name,
            updated.slug,
            updated.key_prefix,
            updated.created_at,
        )
        assert to_datetime(svc.clock.now()) == updated.updated_at
        assert updated == await svc.tenants.get(OPERATOR, tenant.id)

    async def test_new_prefix_applies_to_new_keys_and_old_keys_keep_working(self, svc, tenant):
        _, old = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="old"))

        await svc.tenants.update(OPERATOR, tenant.id, TenantChanges(key_prefix="acme_live"))
        _, new = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="new"))

        assert new.startswith("acme_live_")
        assert Outcome.VALID is (await svc.verifier.verify(old)).outcome
        assert Outcome.VALID is (await svc.verifier.verify(new)).outcome

    async def test_invalid_prefix_is_rejected(self, svc, tenant):
        with pytest.raises(InvalidInput):
            await svc.tenants.update(OPERATOR, tenant.id, TenantChanges(key_prefix="krroot"))

    async def test_taken_slug_is_a_conflict_and_changes_nothing(self, svc, tenant, other_tenant):
        before = svc.db.snapshot()

        with pytest.raises(DuplicateSlug):
            await svc.tenants.update(OPERATOR, tenant.id, TenantChanges(slug=other_tenant.slug))

        assert before == svc.db.snapshot()

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.tenants.update(OPERATOR, "ten_missing", TenantChanges(name="x"))

    async def test_tenant_scoped_writer_updates_its_own_only(self, svc, tenant, other_tenant):
        writer = tenant_principal(tenant.id, P.TENANTS_WRITE)

        updated = await svc.tenants.update(writer, tenant.id, TenantChanges(slug="acme-2"))

        assert "acme-2" == updated.slug
        with pytest.raises(TenantNotFound):
            await svc.tenants.update(writer, other_tenant.id, TenantChanges(slug="x"))


class TestDelete:
    async def test_removes_everything_the_tenant_owns(self, svc, tenant, other_tenant):
        await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        _, theirs = await svc.keys.create(OPERATOR, other_tenant.id, NewKey(name="k"))
        await svc.accounts.create(OPERATOR, tenant.id, name="ci", permissions=frozenset())

        await svc.tenants.delete(OPERATOR, tenant.id)

        assert [other_tenant.id] == list(svc.db.tenants)
        assert {other_tenant.id} == {k.tenant_id for k in svc.db.keys.values()}
        assert {other_tenant.id} == {s.tenant_id for s in svc.db.secrets.values()}
        assert {} == svc.db.service_accounts
        assert {} == svc.db.root_keys
        assert Outcome.VALID is (await svc.verifier.verify(theirs)).outcome

    async def test_its_keys_and_root_keys_stop_working_at_once(self, svc, tenant):
        _, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        _, root_key = await svc.accounts.create(
            OPERATOR, tenant.id, name="ci", permissions=frozenset()
        )
        await svc.verifier.verify(secret)
        await svc.accounts.authenticate(root_key)  # both cached now

        await svc.tenants.delete(OPERATOR, tenant.id)

        assert Outcome.NOT_FOUND is (await svc.verifier.verify(secret)).outcome
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(root_key)

    async def test_unknown_tenant_is_not_found(self, svc):
        with pytest.raises(TenantNotFound):
            await svc.tenants.delete(OPERATOR, "ten_missing")

    async def test_tenant_scoped_caller_is_denied_even_for_its_own(self, svc, tenant):
        with pytest.raises(PermissionDenied):
            await svc.tenants.delete(tenant_principal(tenant.id, P.TENANTS_WRITE), tenant.id)

        assert tenant.id in svc.db.tenants
