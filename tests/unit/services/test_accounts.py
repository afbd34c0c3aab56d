import logging

import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain.permissions import BOOTSTRAP_PERMISSIONS, Permission, Principal
from keyrack.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    RootKeyNotFound,
    ServiceAccountNotFound,
    TenantNotFound,
)
from keyrack.services.accounts import BOOTSTRAP_NAME
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from tests.fakes import FakeServices, build_services, make_peppers, tenant_principal

pytestmark = pytest.mark.anyio

P = Permission
UNKNOWN_ROOT = keyformat.generate(keyformat.ROOT_PREFIX, entropy=b"\x09" * 24)


@pytest.fixture
async def bootstrap_key(svc: FakeServices) -> str:
    root_key = await svc.accounts.bootstrap()
    assert root_key is not None
    return root_key


@pytest.fixture
async def bootstrap(svc: FakeServices, bootstrap_key: str) -> Principal:
    return await svc.accounts.authenticate(bootstrap_key)


class TestBootstrap:
    async def test_creates_the_platform_account_and_a_root_key_once(self, svc, bootstrap_key):
        second = await svc.accounts.bootstrap()

        assert second is None
        [account] = svc.db.service_accounts.values()
        assert (None, BOOTSTRAP_NAME, BOOTSTRAP_PERMISSIONS, True) == (
            account.tenant_id,
            account.name,
            account.permissions,
            account.is_bootstrap,
        )
        [stored] = svc.db.root_keys.values()
        assert bootstrap_key.startswith("krroot_")
        assert keyformat.is_well_formed(bootstrap_key)
        assert (svc.peppers.digest(bootstrap_key), keyformat.display_start(bootstrap_key)) == (
            stored.digest,
            stored.root_key.start,
        )
        assert bootstrap_key not in repr(svc.db.snapshot())

    async def test_bootstrap_principal_holds_all_but_reveal_and_may_grant_reveal(
        self, svc, bootstrap
    ):
        [account] = svc.db.service_accounts.values()

        assert (
            Principal(
                kind="service_account",
                id=account.id,
                tenant_id=None,
                permissions=BOOTSTRAP_PERMISSIONS,
                may_grant_reveal=True,
            )
            == bootstrap
        )

    async def test_runs_again_once_the_bootstrap_key_is_revoked(self, svc, bootstrap_key):
        [account] = svc.db.service_accounts.values()
        [stored] = svc.db.root_keys.values()
        await svc.accounts.revoke_root_key(OPERATOR, None, account.id, stored.root_key.id)

        again = await svc.accounts.bootstrap()

        assert again is not None
        assert again != bootstrap_key
        assert BOOTSTRAP_PERMISSIONS == (await svc.accounts.authenticate(again)).permissions


class TestAuthenticate:
    async def test_is_cached_after_the_first_lookup(self, svc, bootstrap_key):
        first = await svc.accounts.authenticate(bootstrap_key)
        opened = svc.uow.opened

        second = await svc.accounts.authenticate(bootstrap_key)

        assert first == second
        assert opened == svc.uow.opened

    async def test_end_user_key_is_refused_without_a_lookup(self, svc, tenant):
        _, secret = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        opened = svc.uow.opened

        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(secret)

        assert opened == svc.uow.opened

    @pytest.mark.parametrize(
        "presented",
        ["", "krroot_", UNKNOWN_ROOT[:-1], UNKNOWN_ROOT.upper(), UNKNOWN_ROOT + " ", "Bearer x"],
        ids=["empty", "prefix-only", "truncated", "upper-cased", "trailing-space", "scheme"],
    )
    async def test_malformed_credential_is_refused_without_a_lookup(self, svc, presented):
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(presented)

        assert 0 == svc.uow.opened

    async def test_unknown_root_key_is_refused_and_the_miss_cached_briefly(self, svc):
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(UNKNOWN_ROOT)
        svc.clock.advance(1.5)
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(UNKNOWN_ROOT)
        cached = svc.uow.opened
        svc.clock.advance(0.5)
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(UNKNOWN_ROOT)

        assert (1, 2) == (cached, svc.uow.opened)

    async def test_principal_is_reloaded_after_its_ttl(self, svc, bootstrap_key):
        await svc.accounts.authenticate(bootstrap_key)
        opened = svc.uow.opened

        svc.clock.advance(30)
        await svc.accounts.authenticate(bootstrap_key)

        assert opened + 1 == svc.uow.opened

    async def test_revoked_root_key_is_refused_at_once(self, svc, bootstrap, tenant):
        account, root_key = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset({P.KEYS_READ})
        )
        await svc.accounts.authenticate(root_key)  # now cached
        [stored] = await svc.accounts.list_root_keys(bootstrap, tenant.id, account.id)

        revoked = await svc.accounts.revoke_root_key(bootstrap, tenant.id, account.id, stored.id)

        assert to_datetime(svc.clock.now()) == revoked.revoked_at
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(root_key)

    async def test_revoking_one_root_key_leaves_the_others(self, svc, bootstrap, tenant):
        account, first = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset({P.KEYS_READ})
        )
        added, second = await svc.accounts.add_root_key(bootstrap, tenant.id, account.id)
        [first_key, second_key] = await svc.accounts.list_root_keys(
            bootstrap, tenant.id, account.id
        )

        await svc.accounts.revoke_root_key(bootstrap, tenant.id, account.id, first_key.id)

        assert added == second_key
        assert account.id == (await svc.accounts.authenticate(second)).id
        with pytest.raises(AuthenticationFailed):
            await svc.accounts.authenticate(first)

    async def test_root_key_never_reaches_the_logs(self, svc, caplog):
        caplog.set_level(logging.DEBUG)

        root_key = await svc.accounts.bootstrap()
        assert root_key is not None
        await svc.accounts.authenticate(root_key)

        assert caplog.records
        for record in caplog.records:
            assert root_key not in repr(record.__dict__)


class TestPepperUpgrade:
    async def test_root_key_survives_retiring_the_pepper_it_was_issued_under(self, svc):
        root_key = await svc.accounts.bootstrap()
        assert root_key is not None
        upgraded = build_services(db=svc.db, clock=svc.clock, peppers=make_peppers(1, 2))
        await upgraded.accounts.authenticate(root_key)
        await upgraded.writes.flush()

        retired = build_services(db=svc.db, clock=svc.clock, peppers=make_peppers(2))

        assert BOOTSTRAP_PERMISSIONS == (await retired.accounts.authenticate(root_key)).permissions


class TestCreate:
    async def test_tenant_account_authenticates_as_a_tenant_principal(self, svc, bootstrap, tenant):
        granted = frozenset({P.KEYS_READ, P.KEYS_WRITE})

        account, root_key = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=granted
        )
        principal = await svc.accounts.authenticate(root_key)

        assert (tenant.id, "ci", granted, False) == (
            account.tenant_id,
            account.name,
            account.permissions,
            account.is_bootstrap,
        )
        assert (
            Principal(
                kind="service_account", id=account.id, tenant_id=tenant.id, permissions=granted
            )
            == principal
        )

    async def test_granting_more_than_held_is_denied_and_changes_nothing(
        self, svc, bootstrap, tenant
    ):
        _, root_key = await svc.accounts.create(
            bootstrap,
            tenant.id,
            name="admin",
            permissions=frozenset({P.SERVICE_ACCOUNTS_WRITE, P.KEYS_READ}),
        )
        admin = await svc.accounts.authenticate(root_key)
        before = svc.db.snapshot()

        with pytest.raises(PermissionDenied, match=r"keys\.write"):
            await svc.accounts.create(
                admin,
                tenant.id,
                name="x",
                permissions=frozenset({P.KEYS_READ, P.KEYS_WRITE}),
            )

        assert before == svc.db.snapshot()

    async def test_tenant_admin_grants_within_its_own_rights(self, svc, bootstrap, tenant):
        _, root_key = await svc.accounts.create(
            bootstrap,
            tenant.id,
            name="admin",
            permissions=frozenset({P.SERVICE_ACCOUNTS_WRITE, P.KEYS_READ}),
        )
        admin = await svc.accounts.authenticate(root_key)

        account, _ = await svc.accounts.create(
            admin, tenant.id, name="reader", permissions=frozenset({P.KEYS_READ})
        )

        assert tenant.id == account.tenant_id

    async def test_platform_only_permission_for_a_tenant_account_is_invalid(
        self, svc, bootstrap, tenant
    ):
        with pytest.raises(InvalidInput, match="impersonate"):
            await svc.accounts.create(
                bootstrap, tenant.id, name="x", permissions=frozenset({P.IMPERSONATE})
            )

        assert 1 == len(svc.db.service_accounts)

    async def test_platform_only_permission_for_a_platform_account_is_fine(self, svc, bootstrap):
        account, _ = await svc.accounts.create(
            bootstrap, None, name="ops", permissions=frozenset({P.IMPERSONATE, P.USERS_READ})
        )

        assert account.tenant_id is None

    @pytest.mark.parametrize("reveal", [P.KEYS_REVEAL, P.VAULT_REVEAL], ids=str)
    async def test_bootstrap_may_grant_a_reveal_permission(self, svc, bootstrap, tenant, reveal):
        account, root_key = await svc.accounts.create(
            bootstrap, tenant.id, name="revealer", permissions=frozenset({reveal})
        )

        assert frozenset({reveal}) == (await svc.accounts.authenticate(root_key)).permissions
        assert frozenset({reveal}) == account.permissions

    async def test_other_accounts_may_not_grant_reveal(self, svc, bootstrap):
        _, root_key = await svc.accounts.create(
            bootstrap, None, name="platform-admin", permissions=BOOTSTRAP_PERMISSIONS
        )
        admin = await svc.accounts.authenticate(root_key)

        with pytest.raises(PermissionDenied, match=r"keys\.reveal"):
            await svc.accounts.create(admin, None, name="x", permissions=frozenset({P.KEYS_REVEAL}))

    async def test_unknown_tenant_is_not_found(self, svc, bootstrap):
        with pytest.raises(TenantNotFound):
            await svc.accounts.create(bootstrap, "ten_missing", name="x", permissions=frozenset())

    async def test_tenant_principal_cannot_reach_another_tenant_or_the_platform(
        self, svc, tenant, other_tenant
    ):
        admin = tenant_principal(tenant.id, P.SERVICE_ACCOUNTS_WRITE)

        with pytest.raises(TenantNotFound):
            await svc.accounts.create(admin, other_tenant.id, name="x", permissions=frozenset())
        with pytest.raises(PermissionDenied):
            await svc.accounts.create(admin, None, name="x", permissions=frozenset())

    async def test_caller_without_service_accounts_write_is_denied(self, svc, tenant):
        with pytest.raises(PermissionDenied):
            await svc.accounts.create(
                tenant_principal(tenant.id, P.KEYS_WRITE),
                tenant.id,
                name="x",
                permissions=frozenset(),
            )


class TestReadAccounts:
    async def test_get_returns_the_account_of_the_scope(self, svc, bootstrap, tenant):
        account, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset()
        )

        assert account == await svc.accounts.get(bootstrap, tenant.id, account.id)

    async def test_account_of_another_scope_is_not_found(
        self, svc, bootstrap, tenant, other_tenant
    ):
        account, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset()
        )

        with pytest.raises(ServiceAccountNotFound):
            await svc.accounts.get(bootstrap, other_tenant.id, account.id)
        with pytest.raises(ServiceAccountNotFound):
            await svc.accounts.get(bootstrap, None, account.id)

    async def test_list_pages_through_the_scope(self, svc, bootstrap, tenant, other_tenant):
        made = [
            (
                await svc.accounts.create(
                    bootstrap, tenant.id, name=f"a{i}", permissions=frozenset()
                )
            )[0]
            for i in range(3)
        ]
        await svc.accounts.create(bootstrap, other_tenant.id, name="b", permissions=frozenset())

        first = await svc.accounts.list(bootstrap, tenant.id, limit=2)
        second = await svc.accounts.list(bootstrap, tenant.id, limit=2, cursor=first.next_cursor)
        platform = await svc.accounts.list(bootstrap, None)

        assert made == [*first.items, *second.items]
        assert second.next_cursor is None
        assert [BOOTSTRAP_NAME] == [a.name for a in platform.items]

    async def test_list_of_unknown_tenant_is_not_found(self, svc, bootstrap):
        with pytest.raises(TenantNotFound):
            await svc.accounts.list(bootstrap, "ten_missing")

    async def test_list_root_keys_shows_starts_oldest_first(self, svc, bootstrap, tenant):
        account, first = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset()
        )
        svc.clock.advance(1)
        _, second = await svc.accounts.add_root_key(bootstrap, tenant.id, account.id)

        listed = await svc.accounts.list_root_keys(bootstrap, tenant.id, account.id)

        assert [keyformat.display_start(first), keyformat.display_start(second)] == [
            r.start for r in listed
        ]
        assert first not in repr(listed)

    async def test_list_root_keys_of_unknown_account_is_not_found(self, svc, bootstrap, tenant):
        with pytest.raises(ServiceAccountNotFound):
            await svc.accounts.list_root_keys(bootstrap, tenant.id, "sa_missing")


class TestRootKeys:
    async def test_added_root_key_authenticates_as_the_account(self, svc, bootstrap, tenant):
        account, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset({P.KEYS_READ})
        )

        root_key, plaintext = await svc.accounts.add_root_key(bootstrap, tenant.id, account.id)

        assert (account.id, tenant.id, None) == (
            root_key.service_account_id,
            root_key.tenant_id,
            root_key.revoked_at,
        )
        assert account.id == (await svc.accounts.authenticate(plaintext)).id

    async def test_add_to_unknown_account_is_not_found(self, svc, bootstrap, tenant):
        with pytest.raises(ServiceAccountNotFound):
            await svc.accounts.add_root_key(bootstrap, tenant.id, "sa_missing")

    async def test_add_for_an_account_holding_more_than_the_caller_is_denied(
        self, svc, bootstrap, tenant
    ):
        strong, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="strong", permissions=frozenset({P.KEYS_WRITE})
        )
        weak = tenant_principal(tenant.id, P.SERVICE_ACCOUNTS_WRITE)
        before = svc.db.snapshot()

        with pytest.raises(PermissionDenied):
            await svc.accounts.add_root_key(weak, tenant.id, strong.id)

        assert before == svc.db.snapshot()

    async def test_revoking_twice_keeps_the_first_revocation(self, svc, bootstrap, tenant):
        account, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset()
        )
        [root_key] = await svc.accounts.list_root_keys(bootstrap, tenant.id, account.id)
        first = await svc.accounts.revoke_root_key(bootstrap, tenant.id, account.id, root_key.id)
        commits = svc.db.commits
        svc.clock.advance(60)

        second = await svc.accounts.revoke_root_key(bootstrap, tenant.id, account.id, root_key.id)

        assert first == second
        assert commits == svc.db.commits

    async def test_revoke_unknown_or_foreign_root_key_is_not_found(
        self, svc, bootstrap, tenant, other_tenant
    ):
        account, _ = await svc.accounts.create(
            bootstrap, tenant.id, name="ci", permissions=frozenset()
        )
        [root_key] = await svc.accounts.list_root_keys(bootstrap, tenant.id, account.id)

        with pytest.raises(RootKeyNotFound):
            await svc.accounts.revoke_root_key(bootstrap, tenant.id, account.id, "rk_missing")
        with pytest.raises(RootKeyNotFound):
            await svc.accounts.revoke_root_key(bootstrap, other_tenant.id, account.id, root_key.id)
        with pytest.raises(RootKeyNotFound):
            await svc.accounts.revoke_root_key(bootstrap, tenant.id, "sa_other", root_key.id)

        assert svc.db.root_keys[root_key.id].root_key.revoked_at is None
