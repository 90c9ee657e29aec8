"""Per-API-key request limits: 429 with Retry-After once a key's window is spent, against the real rate-limit table."""

from __future__ import annotations

import time
import uuid

import pytest

from billing import ratelimit, wiring
from billing.errors import TooManyRequests
from billing.services import apikeys
from billing.settings import get_settings
from tests.support.api import call


def _key() -> str:
    return f"key_{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _inside_one_window() -> None:
    """Start each test well before its window ends, so its few requests share one window."""
    window = get_settings().api_key_rate_window_seconds
    if window - time.time() % window < 5:
        time.sleep(window - time.time() % window)


def _counter(key_id: str) -> list[dict]:
    table = wiring.rate_limits()
    assert table is not None
    return table.query(f"key#{key_id}")


def test_a_key_gets_its_limit_then_429_with_retry_after(tenant):
    key = _key()
    auth = {"key_id": key, "rate_limit": "3"}
    remaining = []
    for _ in range(3):
        resp = call("GET", "/api/v1/features", tenant=tenant, auth=auth)
        assert resp.status == 200, resp.text
        assert resp.headers["X-RateLimit-Limit"] == "3"
        remaining.append(resp.headers["X-RateLimit-Remaining"])
        reset = int(resp.headers["X-RateLimit-Reset"])
    assert remaining == ["2", "1", "0"]
    window = get_settings().api_key_rate_window_seconds
    assert time.time() < reset <= time.time() + window

    refused = call("GET", "/api/v1/features", tenant=tenant, auth=auth)
    assert refused.status == 429
    assert refused.body["code"] == "too_many_requests"
    assert refused.body["http_status_code"] == 429
    assert refused.body["details"]["limit"] == 3
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= window
    # A refused request is not counted: the window's counter stays at the limit.
    [item] = _counter(key)
    assert item["n"] == 3


def test_a_refused_write_writes_nothing(tenant):
    key = _key()
    auth = {"key_id": key, "rate_limit": "1"}
    first = call("POST", "/api/v1/customers", tenant=tenant, auth=auth, body={"external_id": "c-1", "name": "One"})
    assert first.status == 201, first.text
    second = call("POST", "/api/v1/customers", tenant=tenant, auth=auth, body={"external_id": "c-2", "name": "Two"})
    assert second.status == 429
    assert "Retry-After" in second.headers
    listed = call("GET", "/api/v1/customers", tenant=tenant)
    assert [c["external_id"] for c in listed.body["items"]] == ["c-1"]


def test_keys_and_tenants_do_not_share_a_counter(tenant, other_tenant):
    spent, fresh = _key(), _key()
    assert call("GET", "/api/v1/plans", tenant=tenant, auth={"key_id": spent, "rate_limit": "1"}).status == 200
    assert call("GET", "/api/v1/plans", tenant=tenant, auth={"key_id": spent, "rate_limit": "1"}).status == 429
    # A second key of the same tenant (e.g. during rotation) and another tenant's key are unaffected.
    assert call("GET", "/api/v1/plans", tenant=tenant, auth={"key_id": fresh, "rate_limit": "1"}).status == 200
    assert call("GET", "/api/v1/plans", tenant=other_tenant, auth={"rate_limit": "1"}).status == 200


def test_the_next_window_starts_afresh():
    key = _key()
    window = get_settings().api_key_rate_window_seconds
    start = (int(time.time()) // window) * window
    assert ratelimit.consume(key, 2, now=start + 0.5) is not None
    quota = ratelimit.consume(key, 2, now=start + 1.0)
    assert quota is not None and quota.remaining == 0
    with pytest.raises(TooManyRequests) as refused:
        ratelimit.consume(key, 2, now=start + window - 0.25)
    assert refused.value.details["retry_after"] == 1
    later = ratelimit.consume(key, 2, now=start + window)
    assert later is not None and later.remaining == 1 and later.reset == start + 2 * window
    items = {i["SK"]: i for i in _counter(key)}
    assert {k: v["n"] for k, v in items.items()} == {str(start): 2, str(start + window): 1}
    # Counters expire through the table's TTL one window after their own ends.
    assert items[str(start)]["expires_at"] == start + 2 * window


def test_zero_means_unlimited_and_the_deployment_default_applies_otherwise(tenant):
    unlimited = call("GET", "/api/v1/features", tenant=tenant, auth={"key_id": _key(), "rate_limit": "0"})
    assert unlimited.status == 200
    assert "X-RateLimit-Limit" not in unlimited.headers
    default = call("GET", "/api/v1/features", tenant=tenant, auth={"key_id": _key()})
    assert default.headers["X-RateLimit-Limit"] == str(get_settings().api_key_rate_limit)


def test_unauthenticated_requests_are_not_counted():
    resp = call("GET", "/api/v1/features", tenant=None)
    assert resp.status == 401
    assert "X-RateLimit-Limit" not in resp.headers


def test_the_authorizer_passes_a_keys_own_limit(aws_endpoint):
    table = wiring.entities()
    tenant = apikeys.create_tenant(table, "limits")
    env = apikeys.create_environment(table, tenant["id"], "production")
    _record, clear = apikeys.create_key(table, tenant["id"], env["id"], name="batch", rate_limit=120)
    _record2, plain = apikeys.create_key(table, tenant["id"], env["id"], name="plain")
    assert apikeys.authorize(table, clear)["rate_limit"] == "120"
    assert "rate_limit" not in apikeys.authorize(table, plain)


def test_a_negative_key_limit_is_refused(aws_endpoint):
    table = wiring.entities()
    tenant = apikeys.create_tenant(table, "limits-bad")
    env = apikeys.create_environment(table, tenant["id"], "production")
    with pytest.raises(Exception, match="rate_limit"):
        apikeys.create_key(table, tenant["id"], env["id"], rate_limit=-1)


def test_a_limiter_that_cannot_write_lets_requests_through(tenant, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_TABLE", "no-such-table")
    get_settings.cache_clear()
    wiring.rate_limits.cache_clear()
    auth = {"key_id": _key(), "rate_limit": "1"}
    try:
        resp = call("GET", "/api/v1/features", tenant=tenant, auth=auth)
        again = call("GET", "/api/v1/features", tenant=tenant, auth=auth)  # over the limit, were it counted
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        wiring.rate_limits.cache_clear()
    assert (resp.status, again.status) == (200, 200)
    assert "X-RateLimit-Limit" not in resp.headers
