"""Services wired over the in-memory fakes, with a fake clock."""

from __future__ import annotations

import pytest

from keyrack.domain.models import Tenant
from keyrack.services.authz import OPERATOR
from tests.fakes import FakeServices, build_services


@pytest.fixture
def svc() -> FakeServices:
    return build_services()


@pytest.fixture
async def tenant(svc: FakeServices) -> Tenant:
    return await svc.tenants.create(OPERATOR, name="Acme")


@pytest.fixture
async def other_tenant(svc: FakeServices) -> Tenant:
    return await svc.tenants.create(OPERATOR, name="Globex", key_prefix="gx")
