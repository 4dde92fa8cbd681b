"""Pure parts: key format and hashing, roles, the token bucket, configuration parsing."""

from __future__ import annotations

import pytest

from services.gateway import keys
from services.gateway.config import MIB, GatewayConfig
from services.gateway.keys import Role
from services.gateway.ratelimit import RateLimiter, retry_after


def test_a_key_is_shown_once_and_only_its_salted_hash_is_kept() -> None:
    new = keys.mint()
    parsed = keys.parse(new.secret_key)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == new.key_id and secret not in repr(new.secret_hash)
    assert keys.verify(secret, new.salt, new.secret_hash)
    assert not keys.verify(secret[:-1] + "x", new.salt, new.secret_hash)
    other = keys.mint()
    assert other.salt != new.salt and other.secret_hash != new.secret_hash


@pytest.mark.parametrize(
    "presented",
    ["", "hk_", "hk_zzzz_abc", f"hk_{'0' * 16}_{'a' * 42}", f"xx_{'0' * 16}_{'a' * 43}"],
)
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert keys.parse(presented) is None


def test_roles_include_the_ones_below() -> None:
    assert Role.ADMIN.allows(Role.WRITER) and Role.WRITER.allows(Role.READER)
    assert not Role.READER.allows(Role.WRITER) and not Role.WRITER.allows(Role.ADMIN)


def test_tenant_names() -> None:
    assert keys.valid_tenant_name("acme-eu.prod_2")
    assert not keys.valid_tenant_name("-acme") and not keys.valid_tenant_name("a b")
    assert not keys.valid_tenant_name("x" * 65)


def test_the_bucket_allows_bursts_then_the_steady_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)  # one token every 1/rate seconds
    assert limiter.acquire("other") == 0.0  # per key
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0
    now[0] += 100.0  # idle: refilled to the burst, not beyond
    assert [limiter.acquire("k") for _ in range(4)][-1] > 0
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


def test_idle_buckets_are_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    for n in range(100):
        limiter.acquire(f"key-{n}")
    now[0] += 10.0
    limiter.acquire("fresh")
    assert len(limiter._buckets) == 1


def test_configuration_from_the_environment() -> None:
    config = GatewayConfig.from_env(
        {
            "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "2.5",
            "HARTONOMOUS_GATEWAY_RATE_BURST": "7",
            "HARTONOMOUS_GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example",
            "HARTONOMOUS_GATEWAY_QUOTA_FAIL_OPEN": "false",
        }
    )
    assert (config.rate_per_second, config.rate_burst) == (2.5, 7)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.quota_fail_open is False
    assert config.body_limit("POST", "/v1/atoms", "multipart/form-data; boundary=x") == 256 * MIB
    assert config.body_limit("POST", "/v1/atoms", "application/json") == 8 * MIB
    with pytest.raises(ValueError, match="HARTONOMOUS_GATEWAY_RATE_BURST"):
        GatewayConfig.from_env({"HARTONOMOUS_GATEWAY_RATE_BURST": "many"})
