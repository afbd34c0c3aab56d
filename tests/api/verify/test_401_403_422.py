import pytest

pytestmark = pytest.mark.anyio


def _problem(response, status, code):
    assert status == response.status_code, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (status, code) == (body["status"], body["code"])
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class TestUnauthenticated:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="no-header"),
            pytest.param({"Authorization": "Basic abc"}, id="basic-scheme"),
            pytest.param({"Authorization": "Bearer "}, id="empty-token"),
            pytest.param({"Authorization": "Bearer krroot_nope"}, id="malformed-root-key"),
        ],
    )
    async def test_missing_or_bad_root_key(self, api, headers):
        response = await api.client.post("/v1/verify", json={"key": "x"}, headers=headers)
        _problem(response, 401, "auth.unauthenticated")
        assert "Bearer" == response.headers["www-authenticate"]

    async def test_end_user_key_cannot_call_the_management_api(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"])
        response = await api.client.post(
            "/v1/verify", json={"key": secret}, headers=api.auth(secret)
        )
        _problem(response, 401, "auth.unauthenticated")

    async def test_revoked_root_key_stops_at_once(self, api):
        tenant = await api.tenant()
        root = await api.service_account(tenant["id"], ["keys.verify", "service_accounts.write"])
        assert 200 == (await api.verify("x", root_key=root)).status_code
        accounts = await api.client.get(
            f"/v1/tenants/{tenant['id']}/service-accounts", headers=api.auth()
        )
        account = accounts.json()["items"][0]
        keys = await api.client.get(
            f"/v1/tenants/{tenant['id']}/service-accounts/{account['id']}/root-keys",
            headers=api.auth(),
        )
        root_key_id = keys.json()["items"][0]["id"]
        revoked = await api.client.delete(
            f"/v1/tenants/{tenant['id']}/service-accounts/{account['id']}/root-keys/{root_key_id}",
            headers=api.auth(),
        )
        assert 204 == revoked.status_code
        _problem(await api.verify("x", root_key=root), 401, "auth.unauthenticated")


class TestForbidden:
    async def test_root_key_without_keys_verify(self, api):
        tenant = await api.tenant()
        reader = await api.service_account(tenant["id"], ["keys.read"])
        _problem(await api.verify("x", root_key=reader), 403, "auth.forbidden")


class TestInvalidBody:
    @pytest.mark.parametrize(
        "content",
        [
            pytest.param(b"", id="empty"),
            pytest.param(b"{", id="truncated-json"),
            pytest.param(b"[]", id="array"),
            pytest.param(b'"kr_abc"', id="bare-string"),
            pytest.param(b"{}", id="missing-key"),
            pytest.param(b'{"key": 5}', id="int-key"),
            pytest.param(b'{"key": null}', id="null-key"),
            pytest.param(b'{"key": ["a"]}', id="list-key"),
            pytest.param(b'{"key": "a", "unknown": 1}', id="unknown-field"),
            pytest.param(b'{"key": "a", "permission": "a AND b"}', id="misspelled-field"),
            pytest.param(b'{"key": "a", "permissions": ["a"]}', id="permissions-not-string"),
            pytest.param(b'{"key": "a", "tags": "x"}', id="tags-not-list"),
            pytest.param(b"\xff\xfe", id="not-utf8"),
        ],
    )
    async def test_is_a_422_problem(self, api, content):
        response = await api.client.post(
            "/v1/verify",
            content=content,
            headers={**api.auth(), "content-type": "application/json"},
        )
        body = _problem(response, 422, "request.invalid")
        assert isinstance(body["errors"], list)
        assert body["errors"]

    async def test_error_never_echoes_the_input(self, api):
        secretish = "kr_" + "S" * 39
        response = await api.client.post(
            "/v1/verify", json={"key": secretish, "extra": secretish}, headers=api.auth()
        )
        assert 422 == response.status_code
        assert secretish not in response.text


class TestSizeLimits:
    async def test_body_over_one_mebibyte_is_413(self, api):
        response = await api.client.post(
            "/v1/verify", content=b" " * (1024 * 1024 + 1), headers=api.auth()
        )
        _problem(response, 413, "request.body_too_large")

    async def test_streamed_body_over_the_limit_is_413(self, api):
        async def chunks():
            for _ in range(17):
                yield b" " * 65536

        response = await api.client.post("/v1/verify", content=chunks(), headers=api.auth())
        _problem(response, 413, "request.body_too_large")

    async def test_headers_over_16_kib_are_431(self, api):
        response = await api.client.post(
            "/v1/verify", json={"key": "x"}, headers={**api.auth(), "x-padding": "p" * 17000}
        )
        _problem(response, 431, "request.headers_too_large")

    async def test_caller_request_id_is_echoed(self, api):
        response = await api.client.post(
            "/v1/verify", json={"key": "x"}, headers={**api.auth(), "x-request-id": "req-123"}
        )
        assert "req-123" == response.headers["x-request-id"]
