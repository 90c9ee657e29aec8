"""The billing API through the local stack over HTTP: API Gateway's answers, API keys, customers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import requests

from devstack import template as tpl
from tests.e2e.conftest import DEV_KEY, ROOT, LocalStack


def apikeys(stack: LocalStack, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "tools/apikeys.py", "--endpoint-url", stack.aws, "--table", "EntitiesTable", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def new_key(stack: LocalStack) -> dict:
    suffix = uuid.uuid4().hex[:8]
    return apikeys(stack, "create", "--tenant", f"Acme {suffix}", "--environment", "production")


def test_health_and_ready_file(stack: LocalStack):
    res = requests.get(f"{stack.api}/health", timeout=5)
    assert res.status_code == 200 and res.json() == {"status": "ok"}
    assert stack.info["api_key"] and stack.info["tenant_id"].startswith("tenant_")


def test_missing_key_is_api_gateways_401(stack: LocalStack):
    res = requests.get(f"{stack.api}/api/v1/customers", timeout=5)
    assert res.status_code == 401
    assert res.json() == {"message": "Unauthorized"}
    assert res.headers["apigw-requestid"]
    empty = requests.get(f"{stack.api}/api/v1/customers", headers={"x-api-key": ""}, timeout=5)
    assert empty.status_code == 401 and empty.json() == {"message": "Unauthorized"}


def test_unknown_key_is_401_with_the_error_envelope(stack: LocalStack):
    res = requests.get(f"{stack.api}/api/v1/customers", headers={"x-api-key": "bk_not_a_real_key_000000"}, timeout=5)
    assert res.status_code == 401
    body = res.json()
    assert body["code"] == "unauthorized" and body["http_status_code"] == 401


def test_dev_key_comes_from_billing_dev_api_key_and_works(stack: LocalStack):
    assert stack.info["api_key"] == DEV_KEY
    assert DEV_KEY in stack.log(), "the dev key is printed at startup"
    res = requests.get(f"{stack.api}/api/v1/customers", headers={"x-api-key": DEV_KEY}, timeout=5)
    assert res.status_code == 200, res.text
    assert res.json()["items"] == []


def test_key_from_the_tool_works_until_revoked(stack: LocalStack):
    created = new_key(stack)
    key = created["api_key"]
    headers = {"x-api-key": key}
    assert requests.get(f"{stack.api}/api/v1/customers", headers=headers, timeout=5).status_code == 200

    listed = apikeys(stack, "list", "--tenant-id", created["tenant"]["id"])["keys"]
    assert [k["key_id"] for k in listed] == [created["key"]["key_id"]]
    assert key not in json.dumps(listed), "a listing never shows the key itself"
    assert listed[0]["hint"].startswith(key[:6]) and listed[0]["status"] == "active"

    second = apikeys(
        stack, "create-key", "--tenant-id", created["tenant"]["id"], "--environment-id", created["environment"]["id"]
    )
    apikeys(stack, "revoke", "--key-id", created["key"]["key_id"])
    time.sleep(1.3)  # the stack runs with AuthorizerCacheTtl=1
    res = requests.get(f"{stack.api}/api/v1/customers", headers=headers, timeout=5)
    assert res.status_code == 401
    assert res.json()["code"] == "unauthorized" and "revoked" in res.json()["message"]
    other = requests.get(f"{stack.api}/api/v1/customers", headers={"x-api-key": second["api_key"]}, timeout=5)
    assert other.status_code == 200
    statuses = {
        k["key_id"]: k["status"] for k in apikeys(stack, "list", "--tenant-id", created["tenant"]["id"])["keys"]
    }
    assert statuses == {created["key"]["key_id"]: "revoked", second["key"]["key_id"]: "active"}


def test_customers_round_trip_and_isolation(stack: LocalStack):
    session = requests.Session()
    session.headers["x-api-key"] = new_key(stack)["api_key"]
    base = f"{stack.api}/api/v1/customers"

    created = session.post(base, json={"external_id": "acme-1", "name": "Acme", "email": "b@acme.test"}, timeout=5)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["id"].startswith("cust_") and customer["status"] == "published"

    assert session.get(f"{base}/{customer['id']}", timeout=5).json() == customer
    assert session.get(f"{base}/external/acme-1", timeout=5).json()["id"] == customer["id"]
    listed = session.get(base, params={"limit": 10}, timeout=5).json()
    assert [c["id"] for c in listed["items"]] == [customer["id"]] and listed["pagination"]["total"] == 1

    duplicate = session.post(base, json={"external_id": "acme-1", "name": "Again"}, timeout=5)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "already_exists"

    updated = session.put(f"{base}/{customer['id']}", json={"name": "Acme Inc"}, timeout=5)
    assert updated.status_code == 200 and updated.json()["name"] == "Acme Inc"

    other = requests.Session()
    other.headers["x-api-key"] = new_key(stack)["api_key"]
    assert other.get(f"{base}/{customer['id']}", timeout=5).status_code == 404
    assert other.put(f"{base}/{customer['id']}", json={"name": "X"}, timeout=5).status_code == 404
    assert other.delete(f"{base}/{customer['id']}", timeout=5).status_code == 404
    assert other.get(base, timeout=5).json()["items"] == []

    deleted = session.delete(f"{base}/{customer['id']}", timeout=5)
    assert deleted.status_code == 204 and deleted.content == b""
    assert session.get(f"{base}/{customer['id']}", timeout=5).json()["status"] == "archived"
    assert session.get(base, timeout=5).json()["pagination"]["total"] == 0


def test_unknown_route_and_method_are_404(stack: LocalStack):
    headers = {"x-api-key": stack.info["api_key"]}
    for method, path in (("GET", "/api/v1/nothing-here"), ("PATCH", "/api/v1/customers"), ("GET", "/")):
        res = requests.request(method, f"{stack.api}{path}", headers=headers, timeout=5)
        assert res.status_code == 404, (method, path)
        assert res.json() == {"message": "Not Found"}


def test_malformed_json_is_400_with_the_envelope(stack: LocalStack):
    res = requests.post(
        f"{stack.api}/api/v1/customers",
        data=b'{"external_id": "x",',
        headers={"x-api-key": stack.info["api_key"], "content-type": "application/json"},
        timeout=5,
    )
    assert res.status_code == 400
    assert res.json()["code"] == "validation_error" and res.json()["http_status_code"] == 400


def test_body_over_api_gateways_10_mb_limit_is_413(stack: LocalStack):
    res = requests.post(
        f"{stack.api}/api/v1/customers",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"x-api-key": stack.info["api_key"]},
        timeout=30,
    )
    assert res.status_code == 413 and res.json() == {"message": "Request Entity Too Large"}
    assert requests.get(f"{stack.api}/health", timeout=5).status_code == 200


def test_control_surface_of_the_main_template(stack: LocalStack):
    template = tpl.load()
    declared = {
        f"{name}{event_name}"
        for name, fn in tpl.functions(template).items()
        for event_name, event in fn.events.items()
        if event.get("Type") in ("Schedule", "ScheduleV2")
    } | set(tpl.resources(template, "AWS::Scheduler::Schedule"))
    listed = requests.get(f"{stack.api}/_local/schedules", timeout=5).json()["schedules"]
    assert {s["name"] for s in listed} == declared
    for schedule in listed:
        assert schedule["expression"].startswith(("rate(", "cron(", "at("))
        assert schedule["runs_automatically"] == (schedule["expression"].startswith("rate(") and schedule["enabled"])
    assert requests.post(f"{stack.api}/_local/queues/drain", timeout=5).status_code == 200
    assert requests.post(f"{stack.api}/_local/schedules/Nope/run", timeout=5).status_code == 404


def test_a_key_with_its_own_limit_is_answered_429_with_retry_after(stack: LocalStack):
    suffix = uuid.uuid4().hex[:8]
    created = apikeys(
        stack, "create", "--tenant", f"Limited {suffix}", "--environment", "production", "--rate-limit", "2"
    )
    headers = {"x-api-key": created["api_key"]}
    if 60 - time.time() % 60 < 5:  # keep the three requests inside one 60 s window
        time.sleep(60 - time.time() % 60)
    answers = [requests.get(f"{stack.api}/api/v1/features", headers=headers, timeout=10) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers.get("X-RateLimit-Remaining") for r in answers[:2]] == ["1", "0"]
    refused = answers[2]
    assert refused.json()["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The dev key is a different key: unaffected.
    assert requests.get(f"{stack.api}/api/v1/features", headers={"x-api-key": DEV_KEY}, timeout=10).status_code == 200
