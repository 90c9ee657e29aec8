"""The spec validator itself catches deviations (so the conformance check cannot pass vacuously)."""

from __future__ import annotations

from tests.stripe_emulator import spec


def test_a_valid_customer_passes_and_a_broken_one_fails() -> None:
    customer = {"id": "cus_1", "object": "customer", "created": 1, "livemode": False, "email": None}
    assert spec.object_errors(customer) == []
    broken = {**customer, "created": "yesterday", "email": 5}
    errors = spec.object_errors(broken)
    assert any("created" in e for e in errors) and any("email" in e for e in errors)


def test_requests_are_checked_against_the_operation_schema() -> None:
    assert (
        spec.request_errors("POST", "/v1/invoiceitems", {"customer": "cus_1", "amount": "100", "currency": "usd"}) == []
    )
    assert spec.request_errors("POST", "/v1/invoiceitems", {"customer": "cus_1", "amount": "ten"})
    assert spec.request_errors("POST", "/v1/invoiceitems", {"customer": "cus_1", "bogus": "1"})
    assert spec.request_errors("POST", "/v1/invoiceitems", {"amount": "1"})  # customer is required
    assert spec.request_errors("GET", "/v1/payment_methods", {"customer": "cus_1", "type": "card"}) == []
    assert spec.request_errors("GET", "/v1/payment_methods", {"customer": "cus_1"})  # type is required


def test_nullable_and_expandable_fields() -> None:
    invoice_list = spec.response_errors(
        "GET", "/v1/invoices", 200, {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"}
    )
    assert invoice_list == []
    error = spec.response_errors("GET", "/v1/invoices", 400, {"error": {"type": "invalid_request_error"}})
    assert error == []
    assert spec.response_errors("GET", "/v1/invoices", 400, {"error": {"message": "no type"}})
