import pytest

from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import PermissionDenied, TenantNotFound
from keyrack.services.authz import OPERATOR, authorize

P = Permission


def _principal(tenant_id: str | None, *permissions: Permission) -> Principal:
    return Principal(
        kind="service_account", id="sa_1", tenant_id=tenant_id, permissions=frozenset(permissions)
    )


class TestAuthorize:
    @pytest.mark.parametrize(
        ("principal", "tenant_id"),
        [
            (_principal(None, P.KEYS_READ), "ten_a"),
            (_principal(None, P.KEYS_READ), None),
            (_principal("ten_a", P.KEYS_READ), "ten_a"),
            (OPERATOR, "ten_a"),
            (OPERATOR, None),
        ],
        ids=[
            "platform-on-tenant",
            "platform-on-platform",
            "own-tenant",
            "operator",
            "operator-platform",
        ],
    )
    def test_allows(self, principal, tenant_id):
        authorize(principal, P.KEYS_READ, tenant_id=tenant_id)

    @pytest.mark.parametrize(
        ("principal", "tenant_id", "error"),
        [
            (_principal("ten_a", P.KEYS_READ), "ten_b", TenantNotFound),
            (_principal("ten_a"), "ten_b", TenantNotFound),
            (_principal("ten_a", P.KEYS_READ), None, PermissionDenied),
            (_principal("ten_a"), "ten_a", PermissionDenied),
            (_principal(None), "ten_a", PermissionDenied),
            (_principal(None), None, PermissionDenied),
        ],
        ids=[
            "other-tenant",
            "other-tenant-is-404-before-403",
            "tenant-caller-on-platform-action",
            "own-tenant-without-permission",
            "platform-without-permission",
            "platform-action-without-permission",
        ],
    )
    def test_refuses(self, principal, tenant_id, error):
        with pytest.raises(error):
            authorize(principal, P.KEYS_READ, tenant_id=tenant_id)

    def test_message_names_the_missing_permission(self):
        with pytest.raises(PermissionDenied, match=r"'keys\.write'"):
            authorize(_principal(None), P.KEYS_WRITE, tenant_id=None)

    def test_operator_holds_every_permission_and_may_grant_reveal(self):
        assert frozenset(Permission) == OPERATOR.permissions
        assert OPERATOR.is_platform
        assert OPERATOR.may_grant_reveal
