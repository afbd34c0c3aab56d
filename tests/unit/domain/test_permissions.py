import pytest
from hypothesis import given

from keyrack.domain.people import TenantRole
from keyrack.domain.permissions import (
    BOOTSTRAP_PERMISSIONS,
    PLATFORM_ADMIN_PERMISSIONS,
    PLATFORM_ONLY,
    REVEAL_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    grant_violations,
    parse_permissions,
)
from tests.strategies import permission_sets

P = Permission
NOTHING: frozenset[Permission] = frozenset()


def _principal(
    *permissions: Permission, tenant_id: str | None = None, may_grant_reveal: bool = False
) -> Principal:
    return Principal(
        kind="service_account",
        id="sa_1",
        tenant_id=tenant_id,
        permissions=frozenset(permissions),
        may_grant_reveal=may_grant_reveal,
    )


class TestParsePermissions:
    def test_known_names_become_permissions(self):
        assert frozenset({P.KEYS_READ, P.VAULT_REVEAL}) == parse_permissions(
            ["keys.read", "vault.reveal", "keys.read"]
        )

    def test_no_names_give_no_permissions(self):
        assert NOTHING == parse_permissions([])

    def test_every_permission_round_trips_by_name(self):
        assert frozenset(Permission) == parse_permissions([str(p) for p in Permission])

    @pytest.mark.parametrize(
        "name",
        ["keys.delete", "KEYS.READ", "keys.read ", "", "*"],
        ids=["unknown", "uppercase", "trailing-space", "empty", "wildcard"],
    )
    def test_unknown_name_is_rejected_naming_it(self, name):
        with pytest.raises(ValueError, match="unknown permission") as caught:
            parse_permissions(["keys.read", name])

        assert repr(name) in str(caught.value)

    def test_contract_names_are_exactly_the_nineteen_of_design(self):
        expected = {
            "users.read", "users.write", "impersonate", "tenants.read", "tenants.write",
            "keys.read", "keys.write", "keys.verify", "keys.reveal", "members.read",
            "members.write", "service_accounts.write", "vault.read", "vault.write",
            "vault.reveal", "audit.read", "usage.read", "system_keys.manage", "tokens.issue",
        }  # fmt: skip

        assert expected == {str(p) for p in Permission}


class TestConstants:
    def test_bootstrap_holds_everything_but_the_two_reveals(self):
        assert frozenset(Permission) - {P.KEYS_REVEAL, P.VAULT_REVEAL} == BOOTSTRAP_PERMISSIONS

    def test_reveal_and_platform_only_sets(self):
        assert frozenset({P.KEYS_REVEAL, P.VAULT_REVEAL}) == REVEAL_PERMISSIONS
        assert frozenset({P.IMPERSONATE, P.USERS_READ, P.USERS_WRITE}) == PLATFORM_ONLY


class TestPrincipal:
    def test_platform_principal_sees_every_tenant(self):
        principal = _principal()

        assert principal.is_platform
        assert principal.sees_tenant("ten_a")
        assert principal.sees_tenant("ten_b")

    def test_tenant_principal_sees_only_its_tenant(self):
        principal = _principal(tenant_id="ten_a")

        assert not principal.is_platform
        assert principal.sees_tenant("ten_a")
        assert not principal.sees_tenant("ten_b")

    def test_holds_only_its_permissions(self):
        principal = _principal(P.KEYS_READ)

        assert principal.holds(P.KEYS_READ)
        assert not principal.holds(P.KEYS_WRITE)


class TestGrantViolations:
    def test_granting_a_subset_is_allowed(self):
        granter = _principal(P.KEYS_READ, P.KEYS_WRITE)

        assert (NOTHING, NOTHING) == grant_violations(
            granter, frozenset({P.KEYS_READ}), tenant_scoped=True
        )

    def test_granting_more_than_held_names_the_excess(self):
        granter = _principal(P.KEYS_READ)

        beyond, wrong_scope = grant_violations(
            granter, frozenset({P.KEYS_READ, P.KEYS_WRITE, P.AUDIT_READ}), tenant_scoped=False
        )

        assert frozenset({P.KEYS_WRITE, P.AUDIT_READ}) == beyond
        assert NOTHING == wrong_scope

    @pytest.mark.parametrize("reveal", sorted(REVEAL_PERMISSIONS), ids=str)
    def test_bootstrap_may_grant_a_reveal_it_does_not_hold(self, reveal):
        granter = _principal(*BOOTSTRAP_PERMISSIONS, may_grant_reveal=True)

        assert (NOTHING, NOTHING) == grant_violations(
            granter, frozenset({reveal, P.KEYS_READ}), tenant_scoped=True
        )

    @pytest.mark.parametrize("reveal", sorted(REVEAL_PERMISSIONS), ids=str)
    def test_others_may_not_grant_a_reveal_they_do_not_hold(self, reveal):
        granter = _principal(*BOOTSTRAP_PERMISSIONS)

        assert (frozenset({reveal}), NOTHING) == grant_violations(
            granter, frozenset({reveal}), tenant_scoped=True
        )

    def test_reveal_exception_covers_only_the_reveal_permissions(self):
        granter = _principal(P.KEYS_READ, may_grant_reveal=True)

        beyond, _ = grant_violations(granter, frozenset({P.KEYS_WRITE}), tenant_scoped=False)

        assert frozenset({P.KEYS_WRITE}) == beyond

    def test_platform_only_permissions_are_wrong_scope_for_a_tenant_account(self):
        granter = _principal(*Permission)

        beyond, wrong_scope = grant_violations(
            granter, frozenset({P.IMPERSONATE, P.USERS_READ, P.KEYS_READ}), tenant_scoped=True
        )

        assert NOTHING == beyond
        assert frozenset({P.IMPERSONATE, P.USERS_READ}) == wrong_scope

    def test_platform_only_permissions_are_fine_for_a_platform_account(self):
        granter = _principal(*Permission)

        assert (NOTHING, NOTHING) == grant_violations(granter, PLATFORM_ONLY, tenant_scoped=False)

    def test_both_violations_are_reported_together(self):
        granter = _principal(P.KEYS_READ)

        assert (frozenset({P.IMPERSONATE}), frozenset({P.IMPERSONATE})) == grant_violations(
            granter, frozenset({P.IMPERSONATE}), tenant_scoped=True
        )

    @given(held=permission_sets, requested=permission_sets)
    def test_beyond_is_exactly_what_is_not_held(self, held, requested):
        beyond, wrong_scope = grant_violations(_principal(*held), requested, tenant_scoped=False)

        assert requested - held == beyond
        assert NOTHING == wrong_scope

    @given(requested=permission_sets)
    def test_wrong_scope_is_exactly_the_platform_only_part(self, requested):
        _, wrong_scope = grant_violations(_principal(*Permission), requested, tenant_scoped=True)

        assert requested & PLATFORM_ONLY == wrong_scope


class TestRoleMatrix:
    """``ROLE_PERMISSIONS`` is DESIGN.md §6, row by row."""

    @pytest.mark.parametrize(
        ("permission", "admin", "member"),
        [
            pytest.param(P.TENANTS_READ, True, True, id="read-own-tenant"),
            pytest.param(P.TENANTS_WRITE, False, False, id="tenants-write-platform-only"),
            pytest.param(P.KEYS_READ, True, True, id="keys-read-member-own"),
            pytest.param(P.KEYS_WRITE, True, True, id="keys-write-member-own"),
            pytest.param(P.VAULT_READ, True, False, id="vault-read"),
            pytest.param(P.VAULT_WRITE, True, False, id="vault-write"),
            pytest.param(P.VAULT_REVEAL, False, False, id="vault-reveal-service-only"),
            pytest.param(P.KEYS_REVEAL, False, False, id="keys-reveal-service-only"),
            pytest.param(P.MEMBERS_READ, True, False, id="members-read"),
            pytest.param(P.MEMBERS_WRITE, True, False, id="members-write"),
            pytest.param(P.AUDIT_READ, True, False, id="audit-read"),
            pytest.param(P.USAGE_READ, True, True, id="usage-read-member-own"),
            pytest.param(P.USERS_READ, False, False, id="admin-users"),
            pytest.param(P.IMPERSONATE, False, False, id="impersonate"),
        ],
    )
    def test_tenant_roles_hold_what_the_design_gives_them(self, permission, admin, member):
        assert admin == (permission in ROLE_PERMISSIONS[TenantRole.ADMIN])
        assert member == (permission in ROLE_PERMISSIONS[TenantRole.MEMBER])

    def test_platform_admins_hold_everything_but_the_reveal_permissions(self):
        assert frozenset(P) - REVEAL_PERMISSIONS == PLATFORM_ADMIN_PERMISSIONS

    def test_member_key_permissions_are_own_keys_only(self):
        member = Principal(
            kind="user",
            id="usr_1",
            tenant_id=None,
            permissions=frozenset(),
            memberships=(("ten_a", TenantRole.MEMBER), ("ten_b", TenantRole.ADMIN)),
        )
        assert "usr_1" == member.own_keys_only("ten_a")
        assert member.own_keys_only("ten_b") is None
        assert member.permissions_in("ten_c") is None
        assert not member.is_platform
