"""Provider connections: KMS-encrypted secrets, one active Stripe connection per environment."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from billing import wiring
from billing.scope import Scope
from billing.services import connections
from tests.support.api import call

SECRET = "sk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
WEBHOOK = "whsec_0123456789abcdefghijklmnopqrstuv"
PUBLISHABLE = "pk_test_51AbCdEfGhIjKlMnOp"


def body(**overrides):
    return {
        "name": "Stripe production",
        "provider_type": "stripe",
        "encrypted_secret_data": {
            "secret_key": SECRET,
            "publishable_key": PUBLISHABLE,
            "webhook_secret": WEBHOOK,
        },
        "sync_config": {"customer": {"outbound": True}, "invoice": {"outbound": True}},
        **overrides,
    }


def stored_item(tenant, connection_id):
    return wiring.entities().get(f"{tenant[0]}#{tenant[1]}#connection", connection_id)


def test_create_encrypts_secrets_and_never_returns_them(tenant):
    res = call("POST", "/api/v1/connections", tenant=tenant, body=body())
    assert res.status == 201, res.text
    out = res.body
    assert out["id"].startswith("conn_")
    assert out["provider_type"] == "stripe" and out["connection_status"] == "active"
    assert out["sync_config"]["invoice"] == {"inbound": False, "outbound": True}
    assert SECRET not in res.text and WEBHOOK not in res.text
    assert out["secret_data_hints"]["secret_key"] == "sk_test_…6789"
    item = stored_item(tenant, out["id"])
    assert SECRET not in json.dumps(item, default=str) and WEBHOOK not in json.dumps(item, default=str)
    base64.b64decode(item["secret_ciphertext"], validate=True)
    got = call("GET", f"/api/v1/connections/{out['id']}", tenant=tenant)
    assert got.status == 200 and SECRET not in got.text


def test_secrets_decrypt_only_in_their_own_scope(tenant, other_tenant):
    created = call("POST", "/api/v1/connections", tenant=tenant, body=body()).body
    scope = Scope(*tenant)
    record = connections.get(scope, created["id"])
    assert connections.stripe_credentials(scope, record) == {
        "secret_key": SECRET,
        "publishable_key": PUBLISHABLE,
        "webhook_secret": WEBHOOK,
    }
    # the same ciphertext presented under another tenant's scope does not decrypt
    with pytest.raises(Exception):  # noqa: B017 - KMS refuses: the encryption context differs
        connections.stripe_credentials(Scope(*other_tenant), record)


def test_one_active_stripe_connection_per_environment(tenant, other_tenant):
    first = call("POST", "/api/v1/connections", tenant=tenant, body=body())
    assert first.status == 201
    second = call("POST", "/api/v1/connections", tenant=tenant, body=body(name="again"))
    assert second.status == 409 and second.body["code"] == "already_exists"
    assert call("POST", "/api/v1/connections", tenant=other_tenant, body=body()).status == 201
    assert call("DELETE", f"/api/v1/connections/{first.body['id']}", tenant=tenant).status == 204
    assert call("POST", "/api/v1/connections", tenant=tenant, body=body(name="replacement")).status == 201
    listed = call("GET", "/api/v1/connections", tenant=tenant).body
    assert [c["name"] for c in listed["items"]] == ["replacement"]
    assert (
        call("GET", "/api/v1/connections", tenant=tenant, query={"status": "archived"}).body["pagination"]["total"] == 1
    )


def test_update_rotates_secrets_and_sync_config(tenant):
    created = call("POST", "/api/v1/connections", tenant=tenant, body=body()).body
    new_secret = "sk_test_51ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210"
    res = call(
        "PUT",
        f"/api/v1/connections/{created['id']}",
        tenant=tenant,
        body={
            "encrypted_secret_data": {"secret_key": new_secret},
            "sync_config": {"invoice": {"outbound": False}},
        },
    )
    assert res.status == 200, res.text
    assert res.body["sync_config"]["invoice"]["outbound"] is False
    assert res.body["secret_data_hints"]["secret_key"] == "sk_test_…3210"
    scope = Scope(*tenant)
    assert connections.stripe_credentials(scope, connections.get(scope, created["id"]))["secret_key"] == new_secret


@pytest.mark.parametrize(
    "bad",
    [
        {"provider_type": "paypal"},
        {"encrypted_secret_data": {"secret_key": "not-a-key"}},
        {"encrypted_secret_data": {"secret_key": SECRET, "webhook_secret": "secret"}},
        {"encrypted_secret_data": {"secret_key": SECRET, "publishable_key": "sk_test_wrongkind"}},
        {"encrypted_secret_data": {"secret_key": SECRET, "unexpected": "x"}},
        {"name": ""},
        {"encrypted_secret_data": None},
    ],
)
def test_bad_input_is_400_and_nothing_written(tenant, bad):
    res = call("POST", "/api/v1/connections", tenant=tenant, body=body(**bad))
    assert res.status == 400, res.text
    assert res.body["code"] == "validation_error"
    assert SECRET not in res.text
    assert call("GET", "/api/v1/connections", tenant=tenant).body["pagination"]["total"] == 0


def test_other_tenant_sees_nothing(tenant, other_tenant):
    created = call("POST", "/api/v1/connections", tenant=tenant, body=body()).body
    cid = created["id"]
    assert call("GET", f"/api/v1/connections/{cid}", tenant=other_tenant).status == 404
    assert call("PUT", f"/api/v1/connections/{cid}", tenant=other_tenant, body={"name": "x"}).status == 404
    assert call("DELETE", f"/api/v1/connections/{cid}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/connections", tenant=other_tenant).body["pagination"]["total"] == 0
    assert call("GET", f"/api/v1/connections/{cid}", tenant=tenant).body["connection_status"] == "active"


# ---------------------------------------------------------------------------------------------- the key, checked


def test_the_secret_key_is_checked_with_stripe_and_its_mode_recorded(tenant, stripe_emulator):
    def checks() -> int:
        return sum(1 for r in stripe_emulator.request_log() if r["path"] == "/v1/balance" and r["status"] == 200)

    before = checks()
    res = call("POST", "/api/v1/connections", tenant=tenant, body=body())
    assert res.status == 201, res.text
    assert res.body["livemode"] is False  # Stripe said so: a test-mode key
    assert checks() == before + 1  # one authenticated call
    assert call("GET", f"/api/v1/connections/{res.body['id']}", tenant=tenant).body["livemode"] is False


@pytest.mark.parametrize(("state", "message"), [("revoked", "Invalid API Key"), ("expired", "Expired API Key")])
def test_a_key_stripe_rejects_is_refused_and_nothing_is_written(tenant, stripe_emulator, state, message):
    rejected = f"sk_test_51Rejected{state}{uuid.uuid4().hex}"
    stripe_emulator.set_key_state(rejected, state)
    res = call("POST", "/api/v1/connections", tenant=tenant, body=body(encrypted_secret_data={"secret_key": rejected}))
    assert res.status == 400, res.text
    assert res.body["code"] == "stripe_authentication_failed"
    assert message in res.body["message"] and res.body["details"]["stripe_http_status"] == 401
    assert rejected not in res.text
    assert call("GET", "/api/v1/connections", tenant=tenant).body["pagination"]["total"] == 0
    # nothing holds the environment's one active connection: a good key is accepted next
    assert call("POST", "/api/v1/connections", tenant=tenant, body=body()).status == 201


def test_a_live_key_is_recorded_as_live(tenant):
    live = f"sk_live_51Live{uuid.uuid4().hex}"
    res = call("POST", "/api/v1/connections", tenant=tenant, body=body(encrypted_secret_data={"secret_key": live}))
    assert res.status == 201, res.text
    assert res.body["livemode"] is True


def test_new_keys_on_update_are_checked_and_a_rejected_one_changes_nothing(tenant, stripe_emulator):
    created = call("POST", "/api/v1/connections", tenant=tenant, body=body()).body
    revoked = f"sk_test_51Revoked{uuid.uuid4().hex}"
    stripe_emulator.set_key_state(revoked, "revoked")
    res = call(
        "PUT",
        f"/api/v1/connections/{created['id']}",
        tenant=tenant,
        body={"name": "renamed", "encrypted_secret_data": {"secret_key": revoked}},
    )
    assert res.status == 400 and res.body["code"] == "stripe_authentication_failed"
    after = call("GET", f"/api/v1/connections/{created['id']}", tenant=tenant).body
    assert after["name"] == created["name"] and after["secret_data_hints"] == created["secret_data_hints"]
    scope = Scope(*tenant)
    assert connections.stripe_credentials(scope, connections.get(scope, created["id"]))["secret_key"] == SECRET
    # an update that brings no keys asks Stripe nothing and is applied
    assert call("PUT", f"/api/v1/connections/{created['id']}", tenant=tenant, body={"name": "x"}).status == 200


def test_stripe_unreachable_while_checking_the_key_is_503_with_retry_after(tenant, stripe_emulator):
    stripe_emulator.start_outage("503")
    try:
        res = call("POST", "/api/v1/connections", tenant=tenant, body=body())
    finally:
        stripe_emulator.end_outage()
    assert res.status == 503, res.text
    assert res.headers.get("Retry-After") or res.headers.get("retry-after")
    assert call("GET", "/api/v1/connections", tenant=tenant).body["pagination"]["total"] == 0
