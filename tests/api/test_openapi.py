import pytest

pytestmark = pytest.mark.anyio


async def test_openapi_is_3_1_and_documents_every_route(api):
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    paths = schema["paths"]
    for path in (
        "/v1/verify",
        "/v1/tenants",
        "/v1/tenants/{tenant_id}",
        "/v1/tenants/{tenant_id}/keys",
        "/v1/tenants/{tenant_id}/keys/{key_id}",
        "/v1/tenants/{tenant_id}/keys/{key_id}/rotate",
        "/v1/tenants/{tenant_id}/keys/{key_id}/revoke",
        "/v1/tenants/{tenant_id}/keys/{key_id}/disable",
        "/v1/tenants/{tenant_id}/keys/{key_id}/enable",
        "/v1/service-accounts",
        "/v1/tenants/{tenant_id}/service-accounts",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    verify = paths["/v1/verify"]["post"]
    assert (
        "#/components/schemas/VerifyRequest"
        == (verify["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    )
    assert "VerifyResponse" in schema["components"]["schemas"]


async def test_docs_and_health(api):
    assert 200 == (await api.client.get("/docs")).status_code
    assert {"status": "ok"} == (await api.client.get("/healthz")).json()
    assert {"status": "ready"} == (await api.client.get("/readyz")).json()


async def test_wrong_method_is_a_405_problem(api):
    response = await api.client.get("/v1/verify")
    assert (405, "route.method_not_allowed") == (response.status_code, response.json()["code"])
