"""No secret reaches a log line, an error body or a repr (DESIGN.md §10)."""

import logging

import pytest

pytestmark = pytest.mark.anyio


async def test_secrets_never_reach_logs_or_error_bodies(api, caplog):
    caplog.set_level(logging.DEBUG)
    tenant = await api.tenant()
    key, secret = await api.key(tenant["id"])
    path = f"/v1/tenants/{tenant['id']}/keys/{key['id']}"
    rotated = (
        await api.client.post(f"{path}/rotate", json={"grace_seconds": 5}, headers=api.auth())
    ).json()["secret"]
    bodies = []
    for presented in (secret, rotated, secret + "x", secret.upper()):
        bodies.append((await api.verify(presented)).text)
    bodies.append(
        (
            await api.client.post("/v1/verify", json={"key": secret, "nope": 1}, headers=api.auth())
        ).text
    )
    bodies.append((await api.client.get("/v1/tenants", headers=api.auth(secret))).text)
    bodies.append((await api.client.get(path, headers=api.auth())).text)
    bodies.append(
        (await api.client.get(f"/v1/tenants/{tenant['id']}/keys", headers=api.auth())).text
    )
    await api.runtime.writes.flush()
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for value in (secret, rotated, api.root_key):
        assert value not in logged
        for body in bodies[4:]:
            assert value not in body


async def test_reprs_hold_no_secret_material(api):
    tenant = await api.tenant()
    _, secret = await api.key(tenant["id"])
    result = await api.runtime.verifier.verify(secret)
    text = repr(result) + repr(api.runtime.peppers)
    assert secret not in text
    assert "digest" not in repr(result.record)
