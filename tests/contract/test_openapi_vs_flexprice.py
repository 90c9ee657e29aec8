"""Our OpenAPI document against Flexprice's, for the paths we serve: every difference is listed here on purpose.

Compared: paths and methods (ours under /api/v1, Flexprice's at /), request body field names (top level and one level
down), enums of the fields both sides have, and success status codes. A difference that is not in ALLOWED fails the
test, and so does an ALLOWED entry that is no longer a difference (the list stays exact).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.contract.openapi_diff import differences

ROOT = Path(__file__).resolve().parents[2]
OURS = ROOT / "docs" / "openapi.json"
# The facts of Flexprice's spec for the paths we serve (tools/flexprice_contract.py; tests/reference/README.md).
FLEXPRICE = ROOT / "tests" / "reference" / "flexprice" / "contract.json"

NOT_PUBLISHED = "not in Flexprice's published spec; Flexprice's server has it"
CONNECTIONS = "Flexprice's published spec has no connection routes; the API contract defines them (Stripe setup)"
FILTER_EXTRAS = (
    "Flexprice's sort/expand and extra filter fields are ignored (ours filters by named fields); "
    "non-empty filter conditions (filters) are refused with 400, never ignored"
)


def _fields(operation: str, side: str, names: list[str], reason: str) -> dict[str, str]:
    return {f"{operation}: field {name} only {side}": reason for name in names}


ALLOWED: dict[str, str] = {
    # -- routes Flexprice's published spec omits, or that are ours -------------------------------------------------
    "GET /connections: not in Flexprice's spec": CONNECTIONS,
    "POST /connections: not in Flexprice's spec": CONNECTIONS,
    "GET /connections/{id}: not in Flexprice's spec": CONNECTIONS,
    "PUT /connections/{id}: not in Flexprice's spec": CONNECTIONS,
    "DELETE /connections/{id}: not in Flexprice's spec": CONNECTIONS,
    "GET /customers: not in Flexprice's spec": NOT_PUBLISHED,
    "PUT /customers/{id}: not in Flexprice's spec": "path form of PUT /customers?id= (the SDK's update by id)",
    "GET /customers/{id}/payment-methods: not in Flexprice's spec": "saved cards of the card-setup flow (ours)",
    "GET /features: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /features/{id}: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /invoices: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /meters: not in Flexprice's spec": "read-only here (meters come with features); " + NOT_PUBLISHED,
    "GET /meters/{id}: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /payments/customers/{customer_id}/methods: not in Flexprice's spec": NOT_PUBLISHED,
    "POST /payments/customers/{customer_id}/setup/intent: not in Flexprice's spec": NOT_PUBLISHED
    + " (the SDK's setup-intent call)",
    "GET /plans: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /prices: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /subscriptions: not in Flexprice's spec": NOT_PUBLISHED,
    "GET /dashboard/summary: not in Flexprice's spec": "ours: the dashboards' business figures for a period "
    "(Flexprice has no such route; docs/operations.md)",
    # -- Flexprice operations on our paths that we do not serve ------------------------------------------------------
    "POST /invoices: not served (Flexprice has it)": "one-off invoices are out of scope (subscriptions invoice)",
    "PUT /invoices/{id}: not served (Flexprice has it)": "invoice edits (due date, PDF url) are out of scope",
    "PUT /prices/{id}: not served (Flexprice has it)": "prices are immutable here; archive and create a new one",
    "PUT /subscriptions/{id}: not served (Flexprice has it)": "subscription changes are out of scope (cancel only)",
    "PUT /payments/{id}: not served (Flexprice has it)": "payments change only through the gateway (docs/payments.md)",
    "DELETE /payments/{id}: not served (Flexprice has it)": "a payment record is never deleted (docs/payments.md)",
    "POST /payments: field gateway_options only Flexprice": "Stripe is the only gateway; options are ignored",
    # -- request fields ----------------------------------------------------------------------------------------------
    **_fields(
        "PUT /customers",
        "Flexprice",
        ["integration_entity_mapping"],
        "provider links are made at creation or by the Stripe sync",
    ),
    **_fields(
        "POST /customers",
        "Flexprice",
        ["onboarding_workflow_name", "skip_onboarding_workflow", "tax_rate_overrides"],
        "workflows and taxes are out of scope",
    ),
    "POST /customers: field integration_entity_mapping.metadata only Flexprice": "mapping metadata is not kept",
    **_fields("POST /customers/search", "Flexprice", ["expand", "metadata", "sort"], FILTER_EXTRAS),
    **_fields(
        "POST /events/usage", "Flexprice", ["group_by", "group_by_property"], "grouped usage analytics are out of scope"
    ),
    **_fields(
        "POST /features",
        "Flexprice",
        ["alert_settings", "group_id", "reporting_unit"],
        "feature alerts, groups and reporting units are out of scope",
    ),
    "POST /features/search: field sort only Flexprice": FILTER_EXTRAS,
    **_fields(
        "PUT /features/{id}",
        "ours",
        ["meter", "meter_id", "type"],
        "accepted only to refuse a change of type or meter with a 400 instead of ignoring it",
    ),
    **_fields(
        "PUT /features/{id}",
        "Flexprice",
        ["alert_settings", "group_id", "reporting_unit"],
        "feature alerts, groups and reporting units are out of scope",
    ),
    **_fields(
        "POST /invoices/search",
        "Flexprice",
        [
            "amount_due_gt",
            "amount_remaining_gt",
            "expand",
            "invoice_type",
            "skip_line_items",
            "sort",
            "subscription_customer_id",
        ],
        FILTER_EXTRAS,
    ),
    "POST /plans: field prices only ours": "the documentation creates a plan with pricing: inline prices, one write",
    **_fields("POST /plans/search", "Flexprice", ["sort"], FILTER_EXTRAS),
    "POST /prices: field billing_cadence only ours": "RECURRING only; accepted so the SDK's requests validate",
    **_fields(
        "POST /prices",
        "Flexprice",
        [
            "end_date",
            "filter_values",
            "group_id",
            "min_quantity",
            "price_unit_config",
            "start_date",
            "trial_period_days",
        ],
        "price scheduling, filters, groups, minimums, custom units and trials are out of scope",
    ),
    "POST /prices/search: field plan_id only ours": "shorthand for entity_ids with entity_type PLAN",
    **_fields(
        "POST /prices/search",
        "Flexprice",
        ["allow_expired_prices", "parent_price_id", "sort", "start_date_lt", "subscription_id"],
        FILTER_EXTRAS,
    ),
    "POST /subscriptions: field billing_cadence only ours": "RECURRING only; accepted so the SDK's requests validate",
    **_fields(
        "POST /subscriptions",
        "Flexprice",
        [
            "addons",
            "auto_invoice_threshold",
            "billing_anchor",
            "checkout",
            "commitment_amount",
            "commitment_duration",
            "coupons",
            "credit_grants",
            "enable_true_up",
            "end_date",
            "gateway_payment_method_id",
            "inheritance",
            "line_item_commitments",
            "line_item_coupons",
            "line_items",
            "overage_factor",
            "override_entitlements",
            "override_line_items",
            "payment_terms",
            "phases",
            "proration_behavior",
            "subscription_coupons",
            "subscription_status",
            "tax_rate_overrides",
            "timezone",
            "trial_period_days",
        ],
        "addons, coupons, commitments, credits, phases, trials, overrides and taxes are out of scope",
    ),
    **_fields(
        "POST /subscriptions/search",
        "Flexprice",
        [
            "active_at",
            "billing_cadence",
            "effective_date_for_update",
            "expand",
            "invoicing_customer_ids",
            "parent_subscription_ids",
            "sort",
            "subscription_type",
            "trial_end_due_lte",
            "with_coupon_associations",
            "with_line_items",
        ],
        FILTER_EXTRAS,
    ),
    "POST /subscriptions/usage: field lifetime_usage only Flexprice": "usage is per current period only",
    "POST /subscriptions/{id}/cancel: field cancel_immediately_invoice_policy only ours": (
        "ours is spelt correctly; Flexprice's spec spells it cancel_immediately_inovice_policy"
    ),
    "POST /subscriptions/{id}/cancel: field cancel_immediately_inovice_policy only Flexprice": (
        "the misspelt name of Flexprice's spec; see cancel_immediately_invoice_policy"
    ),
    "POST /subscriptions/{id}/cancel: field proration_behavior only Flexprice": "no proration",
    # -- enums -------------------------------------------------------------------------------------------------------
    "POST /prices: enum billing_period ours-only [] Flexprice-only ['ONETIME']": "one-time charges are out of scope",
    "POST /prices: enum entity_type ours-only [] Flexprice-only ['ADDON', 'COSTSHEET', 'PRICE', 'SUBSCRIPTION']": (
        "prices belong to plans only"
    ),
    "POST /prices: enum price_unit_type ours-only [] Flexprice-only ['CUSTOM']": "custom price units are out of scope",
    "POST /subscriptions: enum billing_period ours-only [] Flexprice-only ['ONETIME']": (
        "a subscription recurs; one-time is not a period"
    ),
}


# Requests Flexprice accepts that we refuse on purpose (found by fuzzing with Flexprice's spec), each with its reason
# and the test that shows the refusal. Everything else Flexprice accepts, we accept (tests/e2e/test_fuzz_flexprice.py,
# tests/integration/test_flexprice_requests.py).
REFUSED: dict[str, tuple[str, str]] = {
    "DELETE /prices/{id} with a future end_date": (
        "Flexprice schedules the price's end; here a price ends when it is deleted (price scheduling is out of scope, "
        "as start_date/end_date on POST /prices): a 400 says so instead of ending the price now or never",
        "tests/integration/test_prices.py::test_delete_body_end_date",
    ),
}


def _found() -> list[str]:
    return differences(json.loads(OURS.read_text()), json.loads(FLEXPRICE.read_text()))


def test_every_difference_from_flexprice_is_listed_with_a_reason() -> None:
    unlisted = [d for d in _found() if d not in ALLOWED]
    assert not unlisted, "differences from Flexprice's spec not in ALLOWED:\n" + "\n".join(unlisted)


def test_every_listed_difference_still_exists() -> None:
    found = set(_found())
    stale = [key for key in ALLOWED if key not in found]
    assert not stale, "ALLOWED entries that are no longer differences:\n" + "\n".join(stale)


def test_the_seed_workflow_matches_flexprice_exactly() -> None:
    """The calls of the user's documentation have the same path, method, status and request field names."""
    found = _found()
    for call in (
        "POST /features:",
        "POST /customers/search:",
        "POST /events:",
        "POST /events/bulk:",
        "POST /events/usage/meter:",
        "GET /invoices/{id}:",
        "PUT /invoices/{id}/payment:",
        "POST /invoices/{id}/finalize:",
        "GET /customers/{id}:",
        "GET /customers/external/{external_id}:",
    ):
        exact = [d for d in found if d.startswith(call) and "only Flexprice" not in d and call != "POST /features:"]
        assert not exact, exact
    assert all(reason.strip() for reason in ALLOWED.values())


def test_every_refusal_has_a_reason_and_a_test() -> None:
    for request, (reason, test) in REFUSED.items():
        path, _, name = test.partition("::")
        assert reason.strip() and f"def {name}(" in (ROOT / path).read_text(), request
