import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain import ids, leases

TENANT = ids.new_id("ten", now_ms=1_800_000_000_000, entropy=b"\x01" * ids.ENTROPY_BYTES)
KEY = ids.new_id("key", now_ms=1_800_000_000_000, entropy=b"\x02" * ids.ENTROPY_BYTES)
ENTROPY = b"\x03" * leases.ENTROPY_BYTES

id_entropy = st.binary(min_size=ids.ENTROPY_BYTES, max_size=ids.ENTROPY_BYTES)
lease_entropy = st.binary(min_size=leases.ENTROPY_BYTES, max_size=leases.ENTROPY_BYTES)
moments = st.integers(min_value=0, max_value=2**48 - 1)


class TestNewLeaseId:
    @given(
        tenant_entropy=id_entropy,
        key_entropy=id_entropy,
        now_ms=moments,
        entropy=lease_entropy,
    )
    def test_parse_names_the_tenant_and_the_key_the_id_was_built_for(
        self, tenant_entropy, key_entropy, now_ms, entropy
    ):
        tenant_id = ids.new_id("ten", now_ms=now_ms, entropy=tenant_entropy)
        key_id = ids.new_id("key", now_ms=now_ms, entropy=key_entropy)

        lease_id = leases.new_lease_id(tenant_id, key_id, entropy)

        assert (tenant_id, key_id) == leases.parse_lease_id(lease_id)

    def test_different_entropy_makes_different_ids(self):
        first = leases.new_lease_id(TENANT, KEY, b"\x00" * leases.ENTROPY_BYTES)
        second = leases.new_lease_id(TENANT, KEY, b"\x00" * 10 + b"\x01")

        assert first != second
        assert len("lse_") + 22 + 22 + 16 == len(first)

    @pytest.mark.parametrize(
        "entropy",
        [b"", b"\x00" * (leases.ENTROPY_BYTES - 1), b"\x00" * (leases.ENTROPY_BYTES + 1)],
        ids=["empty", "one-short", "one-long"],
    )
    def test_entropy_of_the_wrong_size_is_refused(self, entropy):
        with pytest.raises(ValueError, match="ENTROPY_BYTES"):
            leases.new_lease_id(TENANT, KEY, entropy)

    @pytest.mark.parametrize(
        ("tenant_id", "key_id"),
        [
            pytest.param(KEY, KEY, id="key-as-tenant"),
            pytest.param(TENANT, TENANT, id="tenant-as-key"),
            pytest.param(TENANT[:-1], KEY, id="short-tenant-body"),
            pytest.param(TENANT, KEY + "0", id="long-key-body"),
            pytest.param("ten_", "key_", id="empty-bodies"),
        ],
    )
    def test_ids_that_are_not_a_tenant_and_a_key_are_refused(self, tenant_id, key_id):
        with pytest.raises(ValueError, match="expected a tenant id and a key id"):
            leases.new_lease_id(tenant_id, key_id, ENTROPY)


class TestParseLeaseId:
    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("", id="empty"),
            pytest.param("lse_", id="prefix-only"),
            pytest.param(leases.new_lease_id(TENANT, KEY, ENTROPY)[:-1], id="truncated"),
            pytest.param(leases.new_lease_id(TENANT, KEY, ENTROPY) + "0", id="too-long"),
            pytest.param("lsx_" + leases.new_lease_id(TENANT, KEY, ENTROPY)[4:], id="wrong-prefix"),
            pytest.param(leases.new_lease_id(TENANT, KEY, ENTROPY)[:-1] + "-", id="non-base62"),
            pytest.param(KEY, id="a-key-id"),
        ],
    )
    def test_text_that_is_not_a_lease_id_names_nothing(self, text):
        assert leases.parse_lease_id(text) is None
