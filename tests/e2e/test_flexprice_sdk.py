"""Flexprice's official Python SDK (PyPI ``flexprice``) against the local stack: wire compatibility.

The SDK checks status codes exactly and validates every response body against its models
(``ResponseValidationError`` otherwise), so these calls prove the shapes, not only the happy path.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flexprice import Flexprice
from flexprice.models import errors

from tests.e2e.conftest import DEV_KEY


@pytest.fixture(scope="module")
def sdk(stack):
    return Flexprice(server_url=f"{stack.api}/api/v1", api_key_auth=DEV_KEY)


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def test_customer_lifecycle_through_the_sdk(sdk):
    external = f"sdk-{_uid()}"
    created = sdk.customers.create_customer(external_id=external, name="SDK Co", email="sdk@example.com")
    assert created.id.startswith("cust_") and created.external_id == external
    assert sdk.customers.get_customer(id=created.id).name == "SDK Co"
    assert sdk.customers.get_customer_by_external_id(external_id=external).id == created.id
    updated = sdk.customers.update_customer(id=created.id, name="SDK Company")
    assert updated.name == "SDK Company"
    listed = sdk.customers.query_customer(external_ids=[external])
    assert [c.id for c in listed.items] == [created.id]
    assert listed.pagination.total == 1
    with pytest.raises(errors.FlexpriceError) as dup:
        sdk.customers.create_customer(external_id=external, name="again")
    assert dup.value.status_code == 409
    sdk.customers.delete_customer(id=created.id)
    assert sdk.customers.get_customer(id=created.id).status == "archived"


def test_catalog_through_the_sdk(sdk):
    key = _uid()
    feature = sdk.features.create_feature(
        name="API calls",
        type_="metered",
        lookup_key=f"api-calls-{key}",
        meter={
            "name": "API calls",
            "event_name": f"api_call_{key}",
            "aggregation": {"type": "SUM", "field": "tokens"},
            "reset_usage": "BILLING_PERIOD",
        },
    )
    assert feature.id.startswith("feat_") and feature.meter_id.startswith("meter_")
    found = sdk.features.query_feature(feature_ids=[feature.id])
    assert [f.id for f in found.items] == [feature.id]
    assert sdk.features.update_feature(id=feature.id, name="API requests").name == "API requests"

    plan = sdk.plans.create_plan(name="Growth", lookup_key=f"growth-{key}")
    price = sdk.prices.create_price(
        entity_type="PLAN",
        entity_id=plan.id,
        type_="USAGE",
        billing_model="TIERED",
        tier_mode="SLAB",
        tiers=[{"up_to": 1000, "unit_amount": "0.01"}, {"unit_amount": "0.005"}],
        billing_period="MONTHLY",
        billing_period_count=1,
        invoice_cadence="ARREAR",
        currency="USD",
        price_unit_type="FIAT",
        meter_id=feature.meter_id,
    )
    assert price.currency == "usd" and price.tiers[0].unit_amount == "0.01"
    fixed = sdk.prices.create_price(
        entity_type="PLAN",
        entity_id=plan.id,
        type_="FIXED",
        billing_model="FLAT_FEE",
        amount="49.00",
        billing_period="MONTHLY",
        billing_period_count=1,
        invoice_cadence="ADVANCE",
        currency="usd",
        price_unit_type="FIAT",
    )
    assert fixed.amount == "49.00"
    assert sdk.prices.get_price(id=price.id).id == price.id
    got = sdk.plans.get_plan(id=plan.id)
    assert {p.id for p in got.prices or []} == {price.id, fixed.id}
    assert plan.id in [p.id for p in sdk.plans.query_plan(plan_ids=[plan.id]).items]
    assert sdk.features.delete_feature(id=feature.id) is not None


def test_events_and_usage_through_the_sdk(sdk):
    key = _uid()
    feature = sdk.features.create_feature(
        name="Tokens",
        type_="metered",
        meter={
            "name": "Tokens",
            "event_name": f"tokens_{key}",
            "aggregation": {"type": "SUM", "field": "tokens"},
            "reset_usage": "BILLING_PERIOD",
        },
    )
    customer = f"sdk-usage-{key}"
    now = datetime.now(UTC).replace(microsecond=0)
    single = sdk.events.ingest_event(
        event_name=f"tokens_{key}",
        external_customer_id=customer,
        event_id=f"evt-{key}-0",
        properties={"tokens": "125"},
        timestamp=(now - timedelta(minutes=2)).isoformat().replace("+00:00", "Z"),
    )
    assert single["event_id"] == f"evt-{key}-0"
    sdk.events.ingest_events_bulk(
        events=[
            {
                "event_name": f"tokens_{key}",
                "external_customer_id": customer,
                "event_id": f"evt-{key}-{i}",
                "properties": {"tokens": str(10 * i)},
                "timestamp": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            }
            for i in range(1, 4)
        ]
    )
    # a re-sent event is accepted and not counted again
    sdk.events.ingest_event(
        event_name=f"tokens_{key}",
        external_customer_id=customer,
        event_id=f"evt-{key}-0",
        properties={"tokens": "125"},
    )
    usage = sdk.events.get_usage_by_meter(
        meter_id=feature.meter_id,
        external_customer_id=customer,
        start_time=(now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        end_time=(now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
    )
    assert usage.value == 125 + 10 + 20 + 30
    analytics = sdk.events.get_usage_analytics(
        external_customer_id=customer,
        feature_ids=[feature.id],
        start_time=now - timedelta(hours=1),
        end_time=now + timedelta(minutes=1),
        window_size="MINUTE",
    )
    (item,) = analytics.items
    assert item.feature_id == feature.id and item.meter_id == feature.meter_id
    assert item.total_usage == "185" and item.event_count == 4
    assert sum(int(p.usage) for p in item.points) == 185 and sum(p.event_count for p in item.points) == 4
