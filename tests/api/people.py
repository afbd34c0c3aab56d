"""Set-up shared by the people tests: users, members, sign-ins, and the audit rows they leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from keyrack.store.tables import AuditEventRow
from tests.api.conftest import Api

PASSWORD = "correct horse battery staple"


def at(clock: Any, **delta: float) -> str:
    """The clock's time plus ``delta``, as the API renders datetimes."""
    moment = datetime.fromtimestamp(clock.now(), UTC) + timedelta(**delta)
    return moment.isoformat().replace("+00:00", "Z")


async def create_user(
    api: Api,
    email: str,
    *,
    name: str = "Ada Lovelace",
    password: str | None = PASSWORD,
    is_platform_admin: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "name": name, "is_platform_admin": is_platform_admin}
    if password is not None:
        body["password"] = password
    response = await api.client.post("/v1/admin/users", json=body, headers=api.auth())
    assert response.status_code == 201, response.text
    return response.json()


async def add_member(api: Api, tenant_id: str, user_id: str, role: str) -> dict[str, Any]:
    response = await api.client.post(
        f"/v1/tenants/{tenant_id}/members",
        json={"user_id": user_id, "role": role},
        headers=api.auth(),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def login(api: Api, email: str, password: str = PASSWORD) -> str:
    response = await api.client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def signed_in(api: Api, tenant_id: str, role: str, email: str) -> tuple[dict[str, Any], str]:
    """A new user with ``role`` in the tenant, and a session token of theirs."""
    user = await create_user(api, email)
    await add_member(api, tenant_id, user["id"], role)
    return user, await login(api, email)


async def audit_rows(api: Api, action: str) -> list[AuditEventRow]:
    """The audit events of ``action``, oldest first (there is no audit read API yet)."""
    async with api.runtime.sessions() as session:
        result = await session.execute(
            select(AuditEventRow).where(AuditEventRow.action == action).order_by(AuditEventRow.id)
        )
        return list(result.scalars())
