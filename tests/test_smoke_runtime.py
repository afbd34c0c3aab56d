import pytest

from keyrack.domain.verification import Outcome
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

pytestmark = pytest.mark.anyio


async def test_create_then_verify(runtime):
    tenant = await runtime.tenants.create(OPERATOR, name="Acme")
    key, secret = await runtime.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
    result = await runtime.verifier.verify(secret)
    assert result.outcome is Outcome.VALID
    assert result.record.key_id == key.id
