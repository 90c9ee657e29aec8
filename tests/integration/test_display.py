"""What a customer reads: amounts written as on the price (no rounding of sub-cent prices, one format for tiers),
the meter's name where a meter is named, and invoice lines labelled with names, never with ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.api import call
from tests.support.invoicing import setup, subscribe, usd_usage, use


def tiered(meter_id: str) -> dict:
    return {
        **usd_usage(meter_id),
        "billing_model": "TIERED",
        "tier_mode": "SLAB",
        "amount": None,
        "tiers": [{"up_to": 10, "unit_amount": "0.1"}, {"up_to": None, "unit_amount": "1", "flat_amount": "2"}],
    }


def test_amounts_names_and_labels(tenant):
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="0.0125"), tiered(mid)])
    now = datetime.now(UTC).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=(now - timedelta(days=1)).isoformat())
    prices = {p["billing_model"]: p for p in (item["price"] for item in sub["line_items"])}
    assert (prices["FLAT_FEE"]["amount"], prices["FLAT_FEE"]["display_amount"]) == ("0.0125", "$0.0125")
    stored = {p["billing_model"]: p for p in ctx["plan"]["prices"]}
    expected = [{"up_to": 10, "unit_amount": "0.10"}, {"up_to": None, "unit_amount": "1.00", "flat_amount": "2.00"}]
    assert [
        {k: v for k, v in t.items() if v is not None or k == "up_to"} for t in prices["TIERED"]["tiers"]
    ] == expected
    assert [
        {k: v for k, v in t.items() if v is not None or k == "up_to"} for t in stored["TIERED"]["tiers"]
    ] == expected
    use(tenant, ctx, 4, (now - timedelta(minutes=10)).isoformat())
    usage = call("POST", "/api/v1/subscriptions/usage", tenant=tenant, body={"subscription_id": sub["id"]}).body
    assert {c["meter_display_name"] for c in usage["charges"]} == {ctx["meter"]["name"]}
    assert ctx["meter"]["name"] != ctx["event_name"]
    preview = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]}).body
    for line in preview["line_items"]:
        assert line["display_name"].startswith(ctx["meter"]["name"]), line
        assert "price_" not in line["display_name"] and ctx["meter"]["id"] not in line["display_name"]
