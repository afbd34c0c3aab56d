"""Policy, limits, credits, the standalone rate limit and leases through the CLI."""

import json
from typing import Any

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def tenant_id(ready: Cli) -> str:
    tenant_id: str = ready.tenant()["id"]
    return tenant_id


def _verify(cli: Cli, secret: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli.run("keys", "verify", secret, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


class TestKeyPolicyAndLimits:
    def test_create_with_every_option_shows_them_on_the_key(self, ready, tenant_id):
        created = ready.key(
            tenant_id,
            "--ip-allow", "10.0.0.0/8",
            "--origin", "https://app.example",
            "--allow-endpoint", "POST /v1/*",
            "--block-endpoint", "POST /v1/admin",
            "--require-tls",
            "--max-tokens", "4000",
            "--rate-limit", "requests:100:60",
            "--credits", "50",
            "--refill", "monthly:50:1",
            "--budget", "5000000:month:0.9",
            "--max-concurrency", "4",
            "--lease-ttl", "30",
        )  # fmt: skip
        key = created["key"]
        assert ["10.0.0.0/8"] == key["ip_allowlist"]
        assert [{"name": "requests", "limit": 100, "window_seconds": 60}] == key["rate_limits"]
        assert {
            "remaining": 50,
            "refill": {"interval": "monthly", "amount": 50, "day": 1},
        } == key["credits"]
        assert {"limit": 5000000, "period": "month", "soft_threshold": 0.9} == key["budget"]
        assert (4, 30, True, 4000) == (
            key["max_concurrency"],
            key["lease_ttl_seconds"],
            key["require_tls"],
            key["max_tokens_per_request"],
        )

    def test_verify_takes_the_request_facts(self, ready, tenant_id):
        secret = ready.key(tenant_id, "--ip-allow", "10.0.0.0/8")["secret"]
        code, body = _verify(ready, secret, "--ip", "192.168.0.1")
        assert (1, "FORBIDDEN", "ip_not_allowed") == (code, body["code"], body["reason"])
        code, body = _verify(ready, secret, "--ip", "10.0.0.1")
        assert (0, "VALID") == (code, body["code"])

    def test_credits_are_spent_and_persist_across_commands(self, ready, tenant_id):
        created = ready.key(tenant_id, "--credits", "2")
        secret, key_id = created["secret"], created["key"]["id"]
        assert 1 == _verify(ready, secret)[1]["credits"]["remaining"]
        assert 0 == _verify(ready, secret)[1]["credits"]["remaining"]
        code, body = _verify(ready, secret)
        assert (1, "USAGE_EXCEEDED") == (code, body["code"])
        credits = ready.json("keys", "credits", "--tenant", tenant_id, key_id, "--add", "5")
        assert 5 == credits["remaining"]
        assert 4 == _verify(ready, secret)[1]["credits"]["remaining"]
        shown = ready.json("keys", "credits", "--tenant", tenant_id, key_id)
        assert 4 == shown["remaining"]

    def test_more_than_one_change_is_a_usage_error(self, ready, tenant_id):
        key_id = ready.key(tenant_id, "--credits", "2")["key"]["id"]
        result = ready.run(
            "keys", "credits", "--tenant", tenant_id, key_id, "--add", "1", "--sub", "1"
        )
        assert 2 == result.exit_code

    def test_an_identity_id_is_not_a_key(self, ready, tenant_id):
        identity = ready.json(
            "identities", "create", "--tenant", tenant_id, "--external-id", "c", "--credits", "3"
        )

        result = ready.run("keys", "credits", "--tenant", tenant_id, identity["id"], "--set", "9")

        assert 2 == result.exit_code
        assert "error: key not found (key.not_found)" == result.stderr.splitlines()[-1]
        shown = ready.json("identities", "credits", "--tenant", tenant_id, identity["id"])
        assert 3 == shown["remaining"]

    @pytest.mark.parametrize(
        "args",
        [
            ("--rate-limit", "requests:0:60"),
            ("--rate-limit", "requests:10:0"),
            ("--budget", "nope"),
            ("--budget", "10:week"),
            ("--ip-allow", "10.0.0.0/33"),
            ("--max-concurrency", "0"),
        ],
        ids=["zero-limit", "zero-window", "budget-text", "budget-period", "bad-cidr", "zero-conc"],
    )
    def test_bad_values_fail_without_creating(self, ready, tenant_id, args):
        result = ready.run("keys", "create", "--tenant", tenant_id, "--name", "x", *args)
        assert result.exit_code != 0
        listed = ready.json("keys", "list", "--tenant", tenant_id)
        assert [] == listed["items"]


class TestStandaloneRateLimit:
    def test_success_then_exhausted(self, ready):
        args = ("ratelimit", "--namespace", "n", "--identifier", "i", "--limit", "1")
        first = ready.run(*args, "--window-seconds", "60", "--json")
        assert (0, True) == (first.exit_code, json.loads(first.stdout)["success"])


class TestLeases:
    def test_release_is_idempotent(self, ready, tenant_id):
        secret = ready.key(tenant_id, "--max-concurrency", "1")["secret"]
        lease_id = _verify(ready, secret)[1]["lease_id"]
        assert lease_id is not None
        # Each CLI command is its own process: its in-memory leases end with it.
        assert {"released": False} == ready.json("leases", "release", lease_id)

    def test_a_malformed_lease_is_an_error(self, ready):
        result = ready.run("leases", "release", "nope")
        assert result.exit_code != 0
