"""API keys: stored as hashes, resolved by the authorizer to one tenant and environment, revocable."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from billing import wiring
from billing.errors import ValidationFailed
from billing.services import apikeys
from devstack import template as tpl
from devstack.events import LambdaContext, authorizer_event
from devstack.loader import load_handler

FN = tpl.functions(tpl.load())["AuthorizerFunction"]


def authorize(key: str | None) -> dict:
    headers = {"x-api-key": key} if key is not None else {}
    event = authorizer_event("GET /api/v1/customers", "/api/v1/customers", headers, "GET")
    return load_handler(FN.module_path, FN.attribute)(event, LambdaContext("AuthorizerFunction"))


def bootstrap() -> tuple[dict, dict, dict, str]:
    table = wiring.entities()
    tenant = apikeys.create_tenant(table, f"acme-{uuid.uuid4().hex[:6]}")
    env = apikeys.create_environment(table, tenant["id"], "production")
    record, key = apikeys.create_key(table, tenant["id"], env["id"])
    return tenant, env, record, key


def test_key_resolves_to_its_tenant_and_environment(aws_endpoint):
    tenant, env, record, key = bootstrap()
    result = authorize(key)
    assert result == {
        "isAuthorized": True,
        "context": {"tenant_id": tenant["id"], "environment_id": env["id"], "key_id": record["key_id"]},
    }


def test_key_is_stored_only_as_its_sha256(aws_endpoint):
    _, _, record, key = bootstrap()
    table = wiring.entities()
    item = table.get(f"apikey#{hashlib.sha256(key.encode()).hexdigest()}", "apikey")
    assert item is not None and item["key_id"] == record["key_id"]
    assert key not in repr(item)
    assert key not in repr(apikeys.list_keys(table, record["tenant_id"]))


def test_unknown_missing_and_revoked_keys_are_refused(aws_endpoint):
    _, _, record, key = bootstrap()
    assert authorize("bk_" + "x" * 40)["context"] == {"auth_error": "the API key is not valid"}
    assert "auth_error" in authorize(None)["context"]
    apikeys.revoke_key(wiring.entities(), record["key_id"])
    assert authorize(key)["context"] == {"auth_error": "the API key has been revoked"}


def test_rotation_second_key_then_revoke_first(aws_endpoint):
    tenant, env, first, first_key = bootstrap()
    _second, second_key = apikeys.create_key(wiring.entities(), tenant["id"], env["id"], name="rotated")
    apikeys.revoke_key(wiring.entities(), first["key_id"])
    assert authorize(second_key)["context"]["tenant_id"] == tenant["id"]
    assert "auth_error" in authorize(first_key)["context"]


def test_refused_key_reaches_handlers_as_401_envelope(aws_endpoint):
    from tests.support.api import call

    res = call("GET", "/api/v1/customers", tenant=None)
    assert res.status == 401
    assert res.body == {
        "code": "unauthorized",
        "message": "missing key",
        "http_status_code": 401,
        "details": {},
    }


def test_a_key_with_surrounding_whitespace_is_the_same_key(aws_endpoint):
    tenant, _, _, key = bootstrap()
    for presented in (f" {key}", f"{key} ", f"\t{key}  "):
        assert authorize(presented)["context"]["tenant_id"] == tenant["id"], repr(presented)


def _reader_fails(monkeypatch) -> None:
    from billing.errors import ServiceUnavailable
    from billing.store import lean

    def unavailable(*_args, **_kwargs):
        raise ServiceUnavailable("storage is unavailable; retry shortly", {"retry_after": 1})

    monkeypatch.setattr(lean.LeanTable, "get", unavailable)


def test_an_authorizer_that_cannot_read_keys_lets_the_function_decide(aws_endpoint, monkeypatch):
    _, _, _, key = bootstrap()
    _reader_fails(monkeypatch)
    assert authorize(key) == {
        "isAuthorized": True,
        "context": {apikeys.AUTH_UNAVAILABLE: "the API key could not be checked"},
    }


def test_the_function_checks_the_key_itself_when_the_authorizer_could_not(aws_endpoint):
    from tests.support.api import call

    tenant, env, _, key = bootstrap()
    unavailable = {apikeys.AUTH_UNAVAILABLE: "the API key could not be checked"}
    created = call(
        "POST", "/api/v1/customers", tenant=(tenant["id"], env["id"]), body={"external_id": "c-1", "name": "C One"}
    )
    assert created.status == 201
    res = call("GET", "/api/v1/customers", tenant=None, authorizer=unavailable, headers={"x-api-key": key})
    assert res.status == 200, res.text
    assert [c["external_id"] for c in res.body["items"]] == ["c-1"]  # this key's tenant, found by the function
    res = call("GET", "/api/v1/customers", tenant=None, authorizer=unavailable, headers={"x-api-key": "bk_" + "x" * 40})
    assert (res.status, res.body["code"]) == (401, "unauthorized")


def test_when_neither_can_read_the_key_the_answer_is_503_with_retry_after(aws_endpoint, monkeypatch):
    from botocore.retries.standard import ExponentialBackoff

    from tests.support.api import call
    from tests.support.dynamo_faults import INTERNAL, inject

    monkeypatch.setitem(ExponentialBackoff._SERVICE_BACKOFF_CONFIG["dynamodb"], "non_throttling_base_scale", 0.002)
    _, _, _, key = bootstrap()
    unavailable = {apikeys.AUTH_UNAVAILABLE: "the API key could not be checked"}
    wiring.reset()
    try:
        with inject("GetItem", INTERNAL):
            res = call("GET", "/api/v1/customers", tenant=None, authorizer=unavailable, headers={"x-api-key": key})
    finally:
        wiring.reset()
    assert res.status == 503, res.text
    assert res.headers["Retry-After"] == "1"
    assert (res.body["code"], res.body["http_status_code"]) == ("service_unavailable", 503)


def _tool(endpoint: str, *argv: str) -> dict:
    import contextlib
    import io
    import json

    from tools import apikeys as tool

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = tool.main(["--endpoint-url", endpoint, "--table", wiring.entities().name, *argv])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def test_an_environment_is_added_to_an_existing_tenant_with_its_own_key(aws_endpoint):
    tenant, env, _, production_key = bootstrap()
    added = _tool(aws_endpoint, "add-environment", "--tenant-id", tenant["id"], "--environment", "sandbox", "--json")
    assert added["environment"]["tenant_id"] == tenant["id"] and added["environment"]["name"] == "sandbox"
    sandbox = authorize(added["api_key"])["context"]
    assert (sandbox["tenant_id"], sandbox["environment_id"]) == (tenant["id"], added["environment"]["id"])
    assert authorize(production_key)["context"]["environment_id"] == env["id"] != sandbox["environment_id"]


def test_rotation_overlaps_the_old_key_until_it_is_revoked(aws_endpoint):
    tenant, env, record, old_key = bootstrap()
    rotated = _tool(aws_endpoint, "rotate", "--key-id", record["key_id"], "--json")
    new_key = rotated["api_key"]
    assert new_key != old_key and rotated["replaced"]["replaced_by"] == rotated["key"]["key_id"]
    for key in (old_key, new_key):  # both work while clients move over
        assert authorize(key)["context"]["environment_id"] == env["id"]
    _tool(aws_endpoint, "revoke", "--key-id", record["key_id"], "--json")
    assert authorize(new_key)["isAuthorized"] is True
    assert authorize(old_key)["context"] == {"auth_error": "the API key has been revoked"}
    listed = {
        k["key_id"]: k["status"] for k in _tool(aws_endpoint, "list", "--tenant-id", tenant["id"], "--json")["keys"]
    }
    assert listed == {record["key_id"]: "revoked", rotated["key"]["key_id"]: "active"}
    with pytest.raises(ValidationFailed):  # a revoked key is not rotated
        apikeys.rotate_key(wiring.entities(), record["key_id"])
