"""Requests that Flexprice accepts, answered as Flexprice answers them (found by fuzzing with Flexprice's own spec).

Each test is one request shape: ``sort: event_name`` and out-of-range paging on ``/events/query``, an empty
``timezone`` on customers, ``billing_period_count: 0`` on subscriptions, timestamps before year 1000, and the one
rule for ``filters`` on every search (conditions are refused, never silently ignored). The one request we refuse on
purpose (a future ``end_date`` on ``DELETE /prices/{id}``) is listed with its reason in
``tests/contract/test_openapi_vs_flexprice.py`` (``REFUSED``) and tested in ``test_prices.py``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing.timeutil import iso
from tests.support.api import call
from tests.support.invoicing import fixed, setup
from tests.support.metering import ingest


def _events(tenant, customer: str, names: list[str]) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    for index, name in enumerate(names):
        at = (now - timedelta(minutes=30 - index)).isoformat()
        body = {"event_id": uuid.uuid4().hex, "event_name": name, "external_customer_id": customer, "timestamp": at}
        assert ingest(tenant, body).status == 202
    return now


def test_events_query_sorts_by_event_name(tenant):
    _events(tenant, "cust_sort", ["b_event", "a_event", "c_event", "a_event"])
    base = {"external_customer_id": "cust_sort"}
    asc = call("POST", "/api/v1/events/query", tenant=tenant, body={**base, "sort": "event_name", "order": "asc"})
    assert asc.status == 200, asc.text
    assert [e["event_name"] for e in asc.body["events"]] == ["a_event", "a_event", "b_event", "c_event"]
    firsts = [e["timestamp"] for e in asc.body["events"][:2]]
    assert firsts == sorted(firsts)  # ties in time order, in the same direction
    desc = call("POST", "/api/v1/events/query", tenant=tenant, body={**base, "sort": "event_name"})
    assert [e["event_name"] for e in desc.body["events"]] == ["c_event", "b_event", "a_event", "a_event"]
    paged = call(
        "POST",
        "/api/v1/events/query",
        tenant=tenant,
        body={**base, "sort": "event_name", "order": "asc", "page_size": 2, "offset": 1},
    )
    assert [e["event_name"] for e in paged.body["events"]] == ["a_event", "b_event"] and paged.body["has_more"]


@pytest.mark.parametrize(("paging", "expected"), [({"page_size": 0}, 3), ({"page_size": -5, "offset": -1}, 3)])
def test_events_query_defaults_out_of_range_paging_as_flexprice(tenant, paging, expected):
    _events(tenant, "cust_page", ["x", "y", "z"])
    res = call("POST", "/api/v1/events/query", tenant=tenant, body={"external_customer_id": "cust_page", **paging})
    assert res.status == 200, res.text
    assert len(res.body["events"]) == expected and res.body["offset"] == 0


def test_an_empty_timezone_is_utc_on_create_and_update(tenant):
    made = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "tz", "name": "T", "timezone": ""})
    assert made.status == 201, made.text
    assert made.body["timezone"] == "UTC"
    moved = call("PUT", f"/api/v1/customers/{made.body['id']}", tenant=tenant, body={"timezone": "Europe/Paris"})
    assert moved.body["timezone"] == "Europe/Paris"
    back = call("PUT", f"/api/v1/customers/{made.body['id']}", tenant=tenant, body={"timezone": ""})
    assert back.status == 200, back.text
    assert back.body["timezone"] == "UTC"
    assert (
        call(
            "POST", "/api/v1/customers", tenant=tenant, body={"external_id": "t2", "name": "T", "timezone": "Mars/Base"}
        ).status
        == 400
    )


def test_a_period_count_of_zero_is_one(tenant):
    ctx = setup(tenant, lambda mid: [fixed("10.00")])
    body = {
        "customer_id": ctx["customer"]["id"],
        "plan_id": ctx["plan"]["id"],
        "currency": "usd",
        "billing_period": "MONTHLY",
        "billing_period_count": 0,
    }
    res = call("POST", "/api/v1/subscriptions", tenant=tenant, body=body)
    assert res.status == 201, res.text
    assert res.body["billing_period_count"] == 1
    assert call("POST", "/api/v1/subscriptions", tenant=tenant, body={**body, "billing_period_count": -1}).status == 400


def test_timestamps_before_year_1000_keep_four_digits():
    assert iso(datetime(7, 11, 25, 3, 32, 20, tzinfo=UTC)) == "0007-11-25T03:32:20Z"
    assert iso(datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == "0999-01-02T03:04:05.000060Z"
    assert iso(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"


@pytest.mark.parametrize("search", ["customers", "features", "plans", "prices", "subscriptions", "invoices"])
def test_filter_conditions_are_refused_on_every_search_and_an_empty_list_is_fine(tenant, search):
    condition = {"field": "name", "operator": "eq", "data_type": "string", "value": {"string": "x"}}
    refused = call("POST", f"/api/v1/{search}/search", tenant=tenant, body={"filters": [condition]})
    assert refused.status == 400 and refused.body["code"] == "validation_error"
    assert "filters" in refused.body["message"]
    assert call("POST", f"/api/v1/{search}/search", tenant=tenant, body={"filters": []}).status == 200
