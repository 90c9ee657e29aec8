"""Edges a client (or an attacker) can reach with one request: each answers a 4xx with the full error envelope,
writes nothing half-way, and never answers 500.

Covered: JSON that Python cannot parse or DynamoDB cannot hold (huge integers, deep nesting) on every operation that
reads a body; metadata caps on every entity that takes metadata; bounds on every money field; the envelope's four
fields on every error; racing finalizes of one draft; negative usage on a SUM meter.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.services import invoicing
from tests.support.api import call
from tests.support.invoicing import fixed, scope, setup, subscribe, usd_usage, use

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = json.loads((ROOT / "docs" / "openapi.json").read_text())
ENVELOPE = {"code", "message", "http_status_code", "details"}


def _body_operations() -> list[tuple[str, str]]:
    out = []
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "requestBody" in op:
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "x_unknown", path)))
    return sorted(out)


BODY_OPERATIONS = _body_operations()


def assert_envelope(res: Any, status: int | None = None) -> dict[str, Any]:
    assert res.status < 500, (res.status, res.text)
    body = res.body
    assert set(body) == ENVELOPE, body
    assert body["http_status_code"] == res.status and isinstance(body["details"], dict)
    if status is not None:
        assert res.status == status, res.text
    return dict(body)


# ---------------------------------------------------------------------------------------------- JSON bodies


BAD_JSON = {
    "integer of 5000 digits": b'{"name": "x", "amount": 1' + b"0" * 5000 + b"}",
    "nested 100000 deep": b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested 40 deep": b'{"name": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
    "number beyond DynamoDB": b'{"name": "x", "amount": 1e300}',
}


def test_every_operation_with_a_body_is_listed():
    assert len(BODY_OPERATIONS) >= 25 and ("POST", "/api/v1/customers") in BODY_OPERATIONS


@pytest.mark.parametrize("case", sorted(BAD_JSON))
@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_unholdable_json_is_a_400_on_every_body(tenant, method, path, case):
    res = call(method, path, tenant=tenant, raw_body=BAD_JSON[case])
    body = assert_envelope(res)
    # A handler that reads its entity first may answer 404 for the unknown id; every other answer is the 400.
    assert res.status == 400 or (res.status == 404 and "x_unknown" in path), res.text
    if res.status == 400:
        assert body["code"] == "validation_error"


# ---------------------------------------------------------------------------------------------- metadata


def too_many_keys() -> dict[str, str]:
    return {f"k{i}": "v" for i in range(51)}


METADATA_CASES = {
    "51 keys": too_many_keys(),
    "a 41-character key": {"k" * 41: "v"},
    "a 501-character value": {"k": "v" * 501},
    "500 KB": {f"key{i}": "v" * 500 for i in range(1000)},
}


def _creates(tenant) -> dict[str, tuple[str, str, dict[str, Any]]]:
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    return {
        "customer": ("POST", "/api/v1/customers", {"external_id": "c2", "name": "C"}),
        "plan": ("POST", "/api/v1/plans", {"name": "P"}),
        "price": ("POST", "/api/v1/prices", {**fixed("1.00"), "entity_type": "PLAN", "entity_id": ctx["plan"]["id"]}),
        "inline price": ("POST", "/api/v1/plans", {"name": "P", "prices": [{**fixed("1.00"), "metadata": None}]}),
        "feature": ("POST", "/api/v1/features", {"name": "F", "type": "boolean"}),
        "subscription": (
            "POST",
            "/api/v1/subscriptions",
            {
                "customer_id": ctx["customer"]["id"],
                "plan_id": ctx["plan"]["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
            },
        ),
        "connection": (
            "POST",
            "/api/v1/connections",
            {"name": "S", "provider_type": "stripe", "encrypted_secret_data": {"secret_key": "sk_test_x"}},
        ),
        "customer update": ("PUT", f"/api/v1/customers/{ctx['customer']['id']}", {}),
        "plan update": ("PUT", f"/api/v1/plans/{ctx['plan']['id']}", {}),
    }


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_metadata_is_capped_everywhere_it_is_accepted(tenant, case):
    metadata = METADATA_CASES[case]
    for name, (method, path, body) in _creates(tenant).items():
        if name == "inline price":
            body = {**body, "prices": [{**body["prices"][0], "metadata": metadata}]}
        else:
            body = {**body, "metadata": metadata}
        res = call(method, path, tenant=tenant, body=body)
        envelope = assert_envelope(res, 400)
        assert "metadata" in envelope["message"], (name, envelope)


def test_metadata_at_the_caps_is_kept_whole(tenant):
    metadata = {f"{i:02d}" + "k" * 38: "v" * 500 for i in range(50)}
    res = call(
        "POST", "/api/v1/customers", tenant=tenant, body={"external_id": "big", "name": "B", "metadata": metadata}
    )
    assert res.status == 201, res.text
    assert call("GET", f"/api/v1/customers/{res.body['id']}", tenant=tenant).body["metadata"] == metadata


# ---------------------------------------------------------------------------------------------- money


@pytest.fixture
def finalized(tenant) -> dict[str, Any]:
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    stored = invoicing.keys.subscriptions().get(scope(tenant), sub["id"])
    draft = invoicing.draft(scope(tenant), stored, datetime(2026, 2, 16, tzinfo=UTC))
    return {"draft": draft, "ctx": ctx}


@pytest.mark.parametrize("amount", ["1e30", "1000000000000000", 1e36, "0.0000000000001", "-1", "NaN"])
def test_a_payment_amount_beyond_the_bounds_is_a_400(tenant, finalized, amount):
    iid = finalized["draft"]["id"]
    assert call("POST", f"/api/v1/invoices/{iid}/finalize", tenant=tenant).status == 200
    before = call("GET", f"/api/v1/invoices/{iid}", tenant=tenant).body
    res = call(
        "PUT", f"/api/v1/invoices/{iid}/payment", tenant=tenant, body={"payment_status": "OVERPAID", "amount": amount}
    )
    assert_envelope(res, 400)
    assert call("GET", f"/api/v1/invoices/{iid}", tenant=tenant).body == before
    pay = call(
        "POST",
        "/api/v1/payments",
        tenant=tenant,
        body={
            "destination_type": "INVOICE",
            "destination_id": iid,
            "payment_method_type": "OFFLINE",
            "amount": amount,
            "currency": "usd",
        },
    )
    assert_envelope(pay, 400)


def test_a_price_amount_beyond_the_bound_is_a_400(tenant):
    plan = call("POST", "/api/v1/plans", tenant=tenant, body={"name": "P"}).body
    for amount in ("1e15", "1e30", "-5"):
        body = {**fixed(amount), "entity_type": "PLAN", "entity_id": plan["id"]}
        assert_envelope(call("POST", "/api/v1/prices", tenant=tenant, body=body), 400)
        tiered = {
            **usd_usage("m_x"),
            "billing_model": "TIERED",
            "tier_mode": "VOLUME",
            "amount": None,
            "tiers": [{"up_to": None, "unit_amount": amount}],
            "entity_type": "PLAN",
            "entity_id": plan["id"],
        }
        assert_envelope(call("POST", "/api/v1/prices", tenant=tenant, body=tiered), 400)


# ---------------------------------------------------------------------------------------------- envelope


def test_every_error_has_the_four_fields(tenant):
    assert_envelope(call("GET", "/api/v1/customers", tenant=None), 401)
    assert_envelope(call("POST", "/api/v1/customers", tenant=tenant, raw_body=b"{nope"), 400)
    assert_envelope(call("POST", "/api/v1/customers", tenant=tenant, raw_body=b""), 400)
    assert_envelope(call("GET", "/api/v1/customers/cust_missing", tenant=tenant), 404)
    assert_envelope(call("POST", "/api/v1/customers", tenant=tenant, body={"name": "x"}), 400)


# ---------------------------------------------------------------------------------------------- finalize race


def test_twenty_parallel_finalizes_of_one_draft_all_answer_the_winners_200(tenant, finalized):
    iid = finalized["draft"]["id"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: call("POST", f"/api/v1/invoices/{iid}/finalize", tenant=tenant), range(20)))
    assert [a.status for a in answers] == [200] * 20, [a.text for a in answers if a.status != 200]
    numbers = {a.body["invoice_number"] for a in answers}
    assert numbers == {"INV-000001"} and {a.body["invoice_status"] for a in answers} == {"FINALIZED"}
    assert {a.body["finalized_at"] for a in answers} == {answers[0].body["finalized_at"]}
    listed = call("GET", "/api/v1/invoices", tenant=tenant).body["items"]
    assert [i["invoice_number"] for i in listed] == ["INV-000001"]


def test_a_voided_invoice_is_still_refused_by_finalize(tenant, finalized):
    iid = finalized["draft"]["id"]
    assert call("POST", f"/api/v1/invoices/{iid}/void", tenant=tenant).status == 200
    body = assert_envelope(call("POST", f"/api/v1/invoices/{iid}/finalize", tenant=tenant), 400)
    assert body["code"] == "invalid_operation"


# ---------------------------------------------------------------------------------------------- negative usage


def test_negative_sum_usage_is_reported_net_and_billed_at_zero_at_least(tenant):
    ctx = setup(tenant, lambda mid: [usd_usage(mid)])
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=1)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    at = (now - timedelta(minutes=10)).isoformat()
    use(tenant, ctx, 10, at)
    use(tenant, ctx, -4, at)  # a correction
    usage = {
        "external_customer_id": "acme",
        "meter_id": ctx["meter"]["id"],
        "start_time": start.isoformat(),
        "end_time": (now + timedelta(minutes=2)).isoformat(),
    }
    res = call("POST", "/api/v1/events/usage/meter", tenant=tenant, body=usage)
    assert res.status == 200, res.text
    assert res.body["value"] == 6
    lines = call("POST", "/api/v1/subscriptions/usage", tenant=tenant, body={"subscription_id": sub["id"]}).body
    assert [(c["quantity"], Decimal(str(c["amount"]))) for c in lines["charges"]] == [(6, Decimal("0.6"))]
    use(tenant, ctx, -10, at)  # more taken back than was used
    net = call("POST", "/api/v1/events/usage/meter", tenant=tenant, body=usage).body
    assert net["value"] == -4  # the usage endpoints report the net figure
    lines = call("POST", "/api/v1/subscriptions/usage", tenant=tenant, body={"subscription_id": sub["id"]})
    assert lines.status == 200, lines.text
    assert [(c["quantity"], Decimal(str(c["amount"]))) for c in lines.body["charges"]] == [(0, 0)]
    preview = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]})
    assert preview.status == 200, preview.text
    assert [li["amount"] for li in preview.body["line_items"]] == ["0.00"] and preview.body["total"] == "0.00"
