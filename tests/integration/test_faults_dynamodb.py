"""DynamoDB faults injected into the product's botocore client: throttling, transaction conflicts, unprocessed
batch keys, unreachable endpoints.

Transient faults are retried (botocore for throttling and connection errors, ``Table.transact`` for cancelled
transactions, ``Table.batch_get`` for unprocessed keys) and the request succeeds; persistent ones reach the client
as 429 (throttling) or 503 (conflicts, outage) with ``Retry-After`` and the error envelope, and leave nothing
half-written: after the fault clears, the same request succeeds exactly once. Stored state is read back from the
embedded DynamoDB with a separate client that the faults do not touch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from billing import wiring
from billing.scope import Scope
from billing.services import events as event_service
from billing.settings import get_settings
from billing.store import dynamo
from billing.store.counters import counter_pk
from billing.store.entities import entity_pk, unique_pk
from billing.store.invoices import counter_key
from tests.support import aws
from tests.support.api import Response, call
from tests.support.dynamo_faults import (
    CONFLICT,
    INTERNAL,
    ITEM_THROTTLED,
    PROVISIONED,
    THROTTLING,
    inject,
    unprocessed,
)
from tests.support.invoicing import fixed, setup
from tests.support.metering import create_meter, ingest


# Tries in all of one botocore call, as the template configures the functions (AwsCallAttempts).
def botocore_attempts() -> int:
    attempts: int = wiring._config().retries["total_max_attempts"]
    return attempts


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch) -> Iterator[None]:
    """Short backoff so the tests run quickly (the retry logic is unchanged), and a fresh client per test: the
    faults spend botocore's retry quota, which no other test should inherit."""
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.005)
    monkeypatch.setitem(ExponentialBackoff._SERVICE_BACKOFF_CONFIG["dynamodb"], "non_throttling_base_scale", 0.002)
    monkeypatch.setattr(dynamo, "RETRY_BASE", 0.002)
    wiring.reset()
    yield
    wiring.reset()


@pytest.fixture
def db(aws_endpoint: str) -> Any:
    return aws.aws_client("dynamodb", aws_endpoint)


def items(db: Any, table: str, pk: str) -> list[dict[str, Any]]:
    out = db.query(
        TableName=table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    return list(out["Items"])


def entities(db: Any, scope: Scope, kind: str) -> list[dict[str, Any]]:
    return items(db, get_settings().entities_table, entity_pk(scope, kind))


def assert_refused(res: Response, status: int, code: str) -> None:
    assert res.status == status, res.text
    assert res.headers.get("Retry-After") == "1", res.headers
    assert res.body["code"] == code and res.body["http_status_code"] == status
    assert res.body["details"]["retry_after"] == 1 and res.body["message"]


def new_customer(tenant: tuple[str, str], external_id: str | None = None) -> Response:
    body = {"external_id": external_id or f"ext-{uuid.uuid4().hex[:8]}", "name": "Acme"}
    return call("POST", "/api/v1/customers", tenant=tenant, body=body)


def price_body() -> dict[str, Any]:
    return {
        "type": "FIXED",
        "billing_model": "FLAT_FEE",
        "amount": "10.00",
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ARREAR",
    }


# -- one request per storage operation -----------------------------------------------------------------------------


def _get_item(tenant: tuple[str, str]) -> Any:
    customer = new_customer(tenant).body
    return lambda: call("GET", f"/api/v1/customers/{customer['id']}", tenant=tenant), 200


def _query(tenant: tuple[str, str]) -> Any:
    new_customer(tenant)
    return lambda: call("GET", "/api/v1/customers", tenant=tenant), 200


def _batch_get(tenant: tuple[str, str]) -> Any:
    plan = call("POST", "/api/v1/plans", tenant=tenant, body={"name": "Pro", "prices": [price_body()]}).body
    ids = ",".join(p["id"] for p in plan["prices"])
    return lambda: call("GET", "/api/v1/prices", tenant=tenant, query={"price_ids": ids}), 200


def _transact(tenant: tuple[str, str]) -> Any:
    return lambda: new_customer(tenant), 201


OPERATIONS = {
    "GetItem": _get_item,
    "Query": _query,
    "BatchGetItem": _batch_get,
    "TransactWriteItems": _transact,
}


@pytest.mark.parametrize("answer", [THROTTLING, PROVISIONED], ids=["ThrottlingException", "ProvisionedThroughput"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_transient_throttling_is_retried_and_the_request_succeeds(tenant, operation, answer):
    request, ok = OPERATIONS[operation](tenant)
    throttled = botocore_attempts() - 1
    assert throttled >= 1
    with inject(operation, answer, count=throttled) as fault:
        res = request()
    assert res.status == ok, res.text
    assert (fault.injected, fault.seen) == (throttled, botocore_attempts())  # the last try went through


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_persistent_throttling_is_429_with_retry_after(tenant, operation):
    request, _ = OPERATIONS[operation](tenant)
    with inject(operation, THROTTLING) as fault:
        res = request()
    assert_refused(res, 429, "too_many_requests")
    assert fault.seen == botocore_attempts()


def test_a_dynamodb_server_error_that_persists_is_503(tenant):
    request, ok = _get_item(tenant)
    with inject("GetItem", INTERNAL) as fault:
        res = request()
    assert_refused(res, 503, "service_unavailable")
    assert fault.seen == botocore_attempts()
    assert request().status == ok


# -- transaction conflicts: botocore does not retry them, Table.transact does --------------------------------------


def test_a_transient_transaction_conflict_is_retried_and_written_once(tenant, db):
    external = f"ext-{uuid.uuid4().hex[:8]}"
    with inject("TransactWriteItems", CONFLICT, count=3) as fault:
        res = new_customer(tenant, external)
    assert res.status == 201, res.text
    assert (fault.injected, fault.seen) == (3, 4)
    # Every try sent the same transaction (botocore fills in a new ClientRequestToken per call).
    assert all(b["TransactItems"] == fault.bodies[0]["TransactItems"] for b in fault.bodies)
    stored = entities(db, Scope(*tenant), "customer")
    assert [i["SK"]["S"] for i in stored] == [res.body["id"]]


def test_a_persistent_conflict_is_503_with_retry_after(tenant):
    with inject("TransactWriteItems", CONFLICT) as fault:
        res = new_customer(tenant)
    assert_refused(res, 503, "service_unavailable")
    assert fault.seen == dynamo.RETRY_ATTEMPTS


def test_per_item_throttling_in_a_transaction_is_retried_then_429(tenant):
    with inject("TransactWriteItems", ITEM_THROTTLED, count=1) as fault:
        assert new_customer(tenant).status == 201
    assert fault.seen == 2
    with inject("TransactWriteItems", ITEM_THROTTLED) as fault:
        res = new_customer(tenant)
    assert_refused(res, 429, "too_many_requests")
    assert fault.seen == dynamo.RETRY_ATTEMPTS


def test_a_failed_condition_is_not_retried(tenant):
    # A duplicate external id is the client's mistake: one try, 409.
    external = f"ext-{uuid.uuid4().hex[:8]}"
    assert new_customer(tenant, external).status == 201
    with inject("TransactWriteItems", count=0) as fault:  # observe only
        res = new_customer(tenant, external)
    assert res.status == 409 and res.body["code"] == "already_exists"
    assert fault.seen == 1


# -- batch reads: unprocessed keys ---------------------------------------------------------------------------------


def test_unprocessed_batch_keys_are_read_again(tenant):
    request, ok = _batch_get(tenant)
    with inject("BatchGetItem", unprocessed, count=2) as fault:
        res = request()
    assert res.status == ok and len(res.body["items"]) == 1, res.text
    assert fault.seen == 3


def test_keys_that_stay_unprocessed_are_429(tenant):
    request, _ = _batch_get(tenant)
    with inject("BatchGetItem", unprocessed) as fault:
        res = request()
    assert_refused(res, 429, "too_many_requests")
    assert fault.seen == dynamo.RETRY_ATTEMPTS


# -- an unreachable endpoint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["endpoint", "connect-timeout", "read-timeout"])
def test_an_unreachable_endpoint_is_retried_then_503(tenant, error):
    request, ok = _get_item(tenant)
    with inject("GetItem", error=error, count=1) as fault:
        assert request().status == ok
    assert fault.seen == 2
    with inject("GetItem", error=error) as fault:
        res = request()
    assert res.status == 503, res.text
    assert res.headers.get("Retry-After") == "2"
    assert res.body["code"] == "service_unavailable" and res.body["http_status_code"] == 503
    assert fault.seen == botocore_attempts()


# -- nothing half-written --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [CONFLICT, THROTTLING], ids=["conflict", "throttling"])
def test_a_customer_is_created_once_after_a_persistent_fault(tenant, db, answer):
    scope = Scope(*tenant)
    external = f"ext-{uuid.uuid4().hex[:8]}"
    claims = unique_pk(scope, "customer", "external_id")
    with inject("TransactWriteItems", answer):
        refused = new_customer(tenant, external)
    assert refused.status in (429, 503) and refused.headers.get("Retry-After") == "1"
    # Nothing stored: no customer, no claim on the external id.
    assert entities(db, scope, "customer") == []
    assert items(db, get_settings().entities_table, claims) == []
    assert call("GET", f"/api/v1/customers/external/{external}", tenant=tenant).status == 404

    # The client retries the same request: created once; a second retry finds it.
    created = new_customer(tenant, external)
    assert created.status == 201, created.text
    assert new_customer(tenant, external).status == 409
    assert [i["SK"]["S"] for i in entities(db, scope, "customer")] == [created.body["id"]]
    (claim,) = items(db, get_settings().entities_table, claims)
    assert claim["SK"]["S"] == external and claim["entity_id"]["S"] == created.body["id"]


def _counters(db: Any, scope: Scope, customer: str) -> dict[str, dict[str, Decimal]]:
    """Counter items of a customer: bucket key → {attribute: value}."""
    return {
        item["SK"]["S"]: {k: Decimal(v["N"]) for k, v in item.items() if "N" in v}
        for item in items(db, get_settings().events_table, counter_pk(scope, customer))
    }


@pytest.mark.parametrize("answer", [CONFLICT, THROTTLING], ids=["conflict", "throttling"])
def test_an_event_is_counted_once_after_a_persistent_fault(tenant, db, answer):
    scope = Scope(*tenant)
    meter = create_meter(tenant, "api_call", "SUM", "tokens")
    event = {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "event_name": "api_call",
        "external_customer_id": "acme",
        "properties": {"tokens": 7},
    }
    with inject("TransactWriteItems", answer):
        refused = ingest(tenant, event)
    assert refused.status in (429, 503), refused.text
    assert refused.headers.get("Retry-After") == "1"
    # Neither the event (its dedupe record) nor any counter was written.
    stored = db.get_item(
        TableName=get_settings().events_table,
        Key={"PK": {"S": event_service.event_pk(scope, event["event_id"])}, "SK": {"S": event_service.EVENT_SK}},
        ConsistentRead=True,
    )
    assert "Item" not in stored
    assert _counters(db, scope, "acme") == {}
    assert call("GET", "/api/v1/events/lookup", tenant=tenant, query={"id": event["event_id"]}).status == 404

    # The client sends it again (twice: it cannot know whether the first retry landed): counted once.
    assert ingest(tenant, event).status == 202
    assert ingest(tenant, event).status == 202
    counters = _counters(db, scope, "acme")
    assert counters, "the event was not counted"
    for bucket, values in counters.items():
        assert values[f"c#{meter['id']}"] == 1, bucket
        assert values[f"s#{meter['id']}"] == 7, bucket
        assert values["n#api_call"] == 1, bucket


def test_a_subscription_and_its_opening_invoice_are_written_once_after_a_persistent_fault(tenant, db):
    scope = Scope(*tenant)
    ctx = setup(tenant, lambda mid: [fixed("20.00"), fixed("5.00", "ADVANCE")], customer=f"c-{uuid.uuid4().hex[:6]}")
    body = {
        "customer_id": ctx["customer"]["id"],
        "plan_id": ctx["plan"]["id"],
        "currency": "usd",
        "billing_period": "MONTHLY",
    }
    with inject("TransactWriteItems", CONFLICT) as fault:
        refused = call("POST", "/api/v1/subscriptions", tenant=tenant, body=body)
    assert_refused(refused, 503, "service_unavailable")
    # The transaction held the subscription, its opening invoice and the invoice-number counter: none is stored.
    assert len(fault.bodies[0]["TransactItems"]) >= 3
    assert entities(db, scope, "subscription") == []
    assert entities(db, scope, "invoice") == []
    pk, sk = counter_key(scope)
    assert "Item" not in db.get_item(
        TableName=get_settings().entities_table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True
    )

    created = call("POST", "/api/v1/subscriptions", tenant=tenant, body=body)
    assert created.status == 201, created.text
    assert [i["SK"]["S"] for i in entities(db, scope, "subscription")] == [created.body["id"]]
    (invoice,) = entities(db, scope, "invoice")
    assert invoice["invoice_number"]["S"] == "INV-000001"
    assert invoice["subscription_id"]["S"] == created.body["id"]
