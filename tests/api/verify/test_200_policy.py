"""FORBIDDEN, INSUFFICIENT_PERMISSIONS and TOKENS_EXCEEDED through the HTTP API."""

import pytest

pytestmark = pytest.mark.anyio


class TestForbidden:
    @pytest.mark.parametrize(
        ("policy", "facts", "reason"),
        [
            ({"ip_allowlist": ["10.0.0.0/8"]}, {"ip": "192.168.1.1"}, "ip_not_allowed"),
            ({"ip_allowlist": ["10.0.0.0/8"]}, {}, "ip_missing"),
            ({"ip_allowlist": ["2001:db8::/32"]}, {"ip": "2001:db9::1"}, "ip_not_allowed"),
            (
                {"allowed_origins": ["https://app.example"]},
                {"origin": "https://evil.example"},
                "origin_not_allowed",
            ),
            ({"allowed_origins": ["https://app.example"]}, {}, "origin_missing"),
            (
                {"allowed_endpoints": ["POST /v1/chat/*"]},
                {"endpoint": "GET /v1/chat/x"},
                "endpoint_not_allowed",
            ),
            ({"allowed_endpoints": ["POST /v1/chat/*"]}, {}, "endpoint_missing"),
            (
                {"blocked_endpoints": ["* /admin*"]},
                {"endpoint": "get /admin/users"},
                "endpoint_blocked",
            ),
            ({"require_tls": True}, {"tls": False}, "tls_required"),
            ({"require_tls": True}, {}, "tls_missing"),
        ],
        ids=[
            "ip-outside",
            "ip-missing",
            "ipv6-outside",
            "origin-other",
            "origin-missing",
            "endpoint-other-method",
            "endpoint-missing",
            "endpoint-blocked-lowercase-method",
            "tls-false",
            "tls-missing",
        ],
    )
    async def test_policy_refusals_carry_a_reason(self, api, policy, facts, reason):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], **policy)
        body = (await api.verify(secret, **facts)).json()
        assert (False, "FORBIDDEN", reason) == (body["valid"], body["code"], body["reason"])

    async def test_a_request_meeting_every_rule_is_valid(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(
            tenant["id"],
            ip_allowlist=["10.0.0.0/8", "2001:db8::/32"],
            allowed_origins=["https://app.example"],
            allowed_endpoints=["POST /v1/chat/*"],
            blocked_endpoints=["POST /v1/chat/admin"],
            require_tls=True,
        )
        body = (
            await api.verify(
                secret,
                ip="10.1.2.3",
                origin="https://APP.example:443",
                endpoint="post /v1/chat/completions",
                tls=True,
            )
        ).json()
        assert ("VALID", None) == (body["code"], body["reason"])

    async def test_blocked_only_lets_a_request_without_endpoint_through(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], blocked_endpoints=["DELETE *"])
        assert "VALID" == (await api.verify(secret)).json()["code"]

    async def test_policy_is_shown_on_the_key(self, api):
        tenant = await api.tenant()
        key, _ = await api.key(
            tenant["id"], ip_allowlist=["10.1.2.3/8"], allowed_origins=["HTTPS://App.Example/"]
        )
        assert ["10.0.0.0/8"] == key["ip_allowlist"]
        assert ["https://app.example"] == key["allowed_origins"]

    async def test_patching_the_policy_takes_effect_at_once(self, api):
        tenant = await api.tenant()
        key, secret = await api.key(tenant["id"])
        assert "VALID" == (await api.verify(secret, ip="1.2.3.4")).json()["code"]
        patched = await api.client.patch(
            f"/v1/tenants/{tenant['id']}/keys/{key['id']}",
            json={"ip_allowlist": ["10.0.0.0/8"]},
            headers=api.auth(),
        )
        assert 200 == patched.status_code, patched.text
        assert "FORBIDDEN" == (await api.verify(secret, ip="1.2.3.4")).json()["code"]


class TestPermissions:
    @pytest.mark.parametrize(
        ("query", "code"),
        [
            ("chat.write", "VALID"),
            ("chat.write AND documents.read", "VALID"),
            ("chat.write AND billing.read", "INSUFFICIENT_PERMISSIONS"),
            ("billing.read OR documents.read", "VALID"),
            ("billing.read OR chat.write AND documents.read", "VALID"),
            ("(billing.read OR chat.write) AND billing.write", "INSUFFICIENT_PERMISSIONS"),
            ("documents.read.own", "VALID"),
            ("documents.*", "VALID"),
            ("files.*", "INSUFFICIENT_PERMISSIONS"),
            ("reports.view", "VALID"),
        ],
        ids=[
            "direct",
            "and",
            "and-missing",
            "or",
            "and-binds-tighter",
            "parentheses",
            "wildcard-covers-child",
            "wildcard-required-held",
            "wildcard-required-not-held",
            "through-role",
        ],
    )
    async def test_query_table(self, api, query, code):
        tenant = await api.tenant()
        role = await api.client.post(
            f"/v1/tenants/{tenant['id']}/roles",
            json={"name": "analyst", "permissions": ["reports.view"]},
            headers=api.auth(),
        )
        assert 201 == role.status_code, role.text
        _, secret = await api.key(
            tenant["id"], permissions=["chat.write", "documents.*"], roles=["analyst"]
        )
        assert code == (await api.verify(secret, permissions=query)).json()["code"]

    async def test_valid_answer_lists_permissions_from_roles(self, api):
        tenant = await api.tenant()
        await api.client.post(
            f"/v1/tenants/{tenant['id']}/roles",
            json={"name": "analyst", "permissions": ["reports.view"]},
            headers=api.auth(),
        )
        _, secret = await api.key(tenant["id"], permissions=["chat.write"], roles=["analyst"])
        body = (await api.verify(secret)).json()
        assert (["chat.write", "reports.view"], ["analyst"]) == (
            body["permissions"],
            body["roles"],
        )

    @pytest.mark.parametrize(
        ("query", "position"),
        [("a AND", 5), ("(a OR b", 7), ("a and b", 2), ("a AND AND b", 6), ("", 0)],
        ids=["dangling-and", "unclosed", "lowercase-keyword", "double-and", "empty"],
    )
    async def test_a_malformed_query_is_400_with_its_position(self, api, query, position):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"])
        response = await api.verify(secret, permissions=query)
        assert 400 == response.status_code
        body = response.json()
        assert ("permissions.query_syntax", position) == (body["code"], body["position"])
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_a_malformed_query_is_400_even_for_an_unknown_key(self, api):
        response = await api.verify("nope", permissions="a OR")
        assert 400 == response.status_code


class TestTokens:
    async def test_tokens_over_the_maximum(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], max_tokens_per_request=1000)
        body = (await api.verify(secret, tokens=1001)).json()
        assert ("TOKENS_EXCEEDED", "tokens_exceeded") == (body["code"], body["reason"])
        assert "VALID" == (await api.verify(secret, tokens=1000)).json()["code"]
        assert "VALID" == (await api.verify(secret)).json()["code"]

    async def test_permissions_are_checked_before_tokens(self, api):
        tenant = await api.tenant()
        _, secret = await api.key(tenant["id"], max_tokens_per_request=1)
        body = (await api.verify(secret, tokens=5, permissions="chat.write")).json()
        assert "INSUFFICIENT_PERMISSIONS" == body["code"]
