"""What a verify caller tells about the request: amounts, token counts and permission queries."""

import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain import permission_query
from keyrack.domain.credits import MAX_AMOUNT
from keyrack.domain.models import KeyRecord, KeyStatus
from keyrack.domain.policy import build_policy
from keyrack.domain.verification import NOT_FOUND, Outcome, VerifyFacts
from keyrack.errors import InvalidInput, PermissionQuerySyntax
from keyrack.services import verify as verify_module

pytestmark = pytest.mark.anyio

UNKNOWN = keyformat.generate("kr", entropy=b"\x07" * 24)


class TestAmounts:
    @pytest.mark.parametrize(
        ("facts", "field"),
        [
            pytest.param(VerifyFacts(cost=-1), "cost", id="negative-cost"),
            pytest.param(VerifyFacts(cost=MAX_AMOUNT + 1), "cost", id="cost-too-large"),
            pytest.param(VerifyFacts(cost=True), "cost", id="bool-cost"),
            pytest.param(VerifyFacts(cost=1.0), "cost", id="float-cost"),  # type: ignore[arg-type]
            pytest.param(VerifyFacts(spend=-1), "spend", id="negative-spend"),
            pytest.param(VerifyFacts(spend=MAX_AMOUNT + 1), "spend", id="spend-too-large"),
            pytest.param(VerifyFacts(tokens=-1), "tokens", id="negative-tokens"),
            pytest.param(VerifyFacts(tokens=MAX_AMOUNT + 1), "tokens", id="tokens-too-large"),
            pytest.param(VerifyFacts(tokens=False), "tokens", id="bool-tokens"),
            pytest.param(
                VerifyFacts(ratelimits=(("requests", 1), ("tokens", -1))),
                "ratelimits",
                id="negative-override",
            ),
            pytest.param(
                VerifyFacts(ratelimits=(("requests", MAX_AMOUNT + 1),)),
                "ratelimits",
                id="override-too-large",
            ),
            pytest.param(
                VerifyFacts(ratelimits=(("requests", "1"),)),  # type: ignore[arg-type]
                "ratelimits",
                id="string-override",
            ),
        ],
    )
    async def test_an_amount_out_of_bounds_is_refused_whatever_the_key(self, svc, facts, field):
        with pytest.raises(InvalidInput) as raised:
            await svc.verifier.verify("not a key", facts=facts)

        assert {"field": field} == raised.value.details
        assert 0 == svc.uow.opened

    @pytest.mark.parametrize(
        "facts",
        [
            pytest.param(VerifyFacts(cost=0, spend=0, tokens=0), id="zeros"),
            pytest.param(
                VerifyFacts(
                    cost=MAX_AMOUNT,
                    spend=MAX_AMOUNT,
                    tokens=MAX_AMOUNT,
                    ratelimits=(("requests", MAX_AMOUNT), ("tokens", 0)),
                ),
                id="largest",
            ),
        ],
    )
    async def test_amounts_at_their_bounds_are_accepted(self, svc, facts):
        assert NOT_FOUND == await svc.verifier.verify(UNKNOWN, facts=facts)


class TestPermissionQueries:
    async def test_a_malformed_query_is_refused_whatever_the_key(self, svc):
        with pytest.raises(PermissionQuerySyntax):
            await svc.verifier.verify("not a key", facts=VerifyFacts(permissions="a AND"))

    def test_a_repeated_query_is_parsed_once(self, svc):
        first = svc.verifier.parse_query("a AND (b OR c)")
        second = svc.verifier.parse_query("a AND (b OR c)")

        assert first is second
        assert permission_query.parse("a AND (b OR c)") == first

    def test_past_its_size_the_remembered_queries_start_over(self, svc):
        size = verify_module._MAX_QUERIES
        queries = [f"p{i}" for i in range(size + 1)]

        parsed = [svc.verifier.parse_query(text) for text in queries]

        assert [permission_query.parse(text) for text in queries] == parsed
        assert {queries[-1]} == set(svc.verifier._queries)
        assert permission_query.parse("p0") == svc.verifier.parse_query("p0")


async def _warm_key_with_token_cap(svc, tenant, cap: int) -> str:
    """A key whose record (with a token policy, as the SQL lookup builds it) is cached."""
    secret = keyformat.generate("kr", entropy=b"\x09" * 24)
    record = KeyRecord(
        key_id="key_0000000000000000000001",
        tenant_id=tenant.id,
        secret_id="sec_1",
        pepper_version=svc.peppers.current_version,
        status=KeyStatus.ACTIVE,
        valid_until=None,
        name="k",
        owner_id=None,
        identity_id=None,
        meta={},
        permissions=("chat.write",),
        roles=(),
        expires_at=None,
        granted=frozenset({"chat.write"}),
        policy=build_policy(max_tokens_per_request=cap),
    )
    svc.key_cache.put(
        svc.peppers.digest(secret),
        record,
        owner=record.key_id,
        expires_at=svc.clock.now() + 30,
    )
    return secret


class TestTokens:
    async def test_more_tokens_than_the_key_allows_per_request_is_refused(self, svc, tenant):
        secret = await _warm_key_with_token_cap(svc, tenant, 100)

        at_cap = await svc.verifier.verify(secret, facts=VerifyFacts(tokens=100))
        over = await svc.verifier.verify(secret, facts=VerifyFacts(tokens=101))

        assert Outcome.VALID == at_cap.outcome
        assert Outcome.TOKENS_EXCEEDED == over.outcome

    async def test_permissions_are_checked_before_tokens(self, svc, tenant):
        secret = await _warm_key_with_token_cap(svc, tenant, 100)

        result = await svc.verifier.verify(
            secret, facts=VerifyFacts(tokens=101, permissions="admin")
        )

        assert Outcome.INSUFFICIENT_PERMISSIONS == result.outcome

    async def test_a_permitted_request_within_the_cap_is_valid(self, svc, tenant):
        secret = await _warm_key_with_token_cap(svc, tenant, 100)

        result = await svc.verifier.verify(
            secret, facts=VerifyFacts(tokens=5, permissions="chat.write")
        )

        assert Outcome.VALID == result.outcome
