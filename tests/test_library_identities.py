"""Identities through the embedded library, as a Python service would manage them."""

import pytest

from keyrack import Keyrack
from keyrack.domain.credits import Credits, Refill, RefillInterval
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import DuplicateExternalId, IdentityNotFound

pytestmark = pytest.mark.anyio


async def test_create_get_list_update_delete(settings):
    async with await Keyrack.open(settings) as kr:
        tenant = await kr.create_tenant("Acme")
        rpm = RateLimit("requests", 100, 60_000)
        identity = await kr.create_identity(
            tenant.id,
            "cus_1",
            meta={"plan": "pro"},
            rate_limits=[rpm],
            credits=Credits(500, Refill(RefillInterval.MONTHLY, 1000, 1)),
        )
        assert ("cus_1", {"plan": "pro"}, (rpm,)) == (
            identity.external_id,
            identity.meta,
            identity.limits.rate_limits,
        )
        assert identity == await kr.get_identity(tenant.id, identity.id)
        other = await kr.create_identity(tenant.id, "cus_2")
        page = await kr.list_identities(tenant.id)
        assert [identity, other] == list(page.items)
        assert [other] == list((await kr.list_identities(tenant.id, external_id="cus_2")).items)
        with pytest.raises(DuplicateExternalId):
            await kr.create_identity(tenant.id, "cus_2")

        updated = await kr.update_identity(
            tenant.id, identity.id, meta={"plan": "team"}, rate_limits=[], credits=None
        )
        assert ("cus_1", {"plan": "team"}, (), None, 2) == (
            updated.external_id,
            updated.meta,
            updated.limits.rate_limits,
            updated.limits.credits,
            updated.version,
        )
        assert updated == await kr.get_identity(tenant.id, identity.id)
        renamed = await kr.update_identity(
            tenant.id, identity.id, external_id="cus_9", credits=Credits(3)
        )
        assert ("cus_9", 3) == (renamed.external_id, renamed.limits.credits.remaining)  # type: ignore[union-attr]  # credits were just set

        await kr.delete_identity(tenant.id, identity.id)
        with pytest.raises(IdentityNotFound):
            await kr.get_identity(tenant.id, identity.id)
