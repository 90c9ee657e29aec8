"""Stripe's v1 endpoints the product uses, one module per resource, joined here with the route table."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stripe_emulator.resources.base import API_VERSION
from stripe_emulator.resources.events import Events

if TYPE_CHECKING:
    from stripe_emulator.server import StripeEmulator

__all__ = ["API_VERSION", "Api"]


class Api(Events):
    """Endpoint implementations. Every method runs under the emulator lock."""

    def __init__(self, emulator: StripeEmulator) -> None:
        super().__init__(emulator)
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        r = self._route
        r("POST", "/v1/customers", self.customer_create)
        r("GET", "/v1/customers", self.customer_list)
        r("GET", "/v1/customers/search", self.customer_search)
        r("GET", "/v1/customers/{id}", self.customer_retrieve)
        r("POST", "/v1/customers/{id}", self.customer_update)
        r("DELETE", "/v1/customers/{id}", self.customer_delete)
        r("GET", "/v1/customers/{id}/payment_methods", self.customer_payment_methods)
        r("POST", "/v1/customers/{id}/balance_transactions", self.balance_transaction_create)
        r("GET", "/v1/customers/{id}/balance_transactions", self.balance_transaction_list)
        r("GET", "/v1/customers/{id}/balance_transactions/{id}", self.balance_transaction_retrieve)
        r("POST", "/v1/products", self.product_create)
        r("GET", "/v1/products", self.product_list)
        r("GET", "/v1/products/{id}", self.product_retrieve)
        r("POST", "/v1/products/{id}", self.product_update)
        r("DELETE", "/v1/products/{id}", self.product_delete)
        r("POST", "/v1/prices", self.price_create)
        r("GET", "/v1/prices", self.price_list)
        r("GET", "/v1/prices/{id}", self.price_retrieve)
        r("POST", "/v1/prices/{id}", self.price_update)
        r("POST", "/v1/invoices", self.invoice_create)
        r("GET", "/v1/invoices", self.invoice_list)
        r("GET", "/v1/invoices/{id}", self.invoice_retrieve)
        r("POST", "/v1/invoices/{id}", self.invoice_update)
        r("DELETE", "/v1/invoices/{id}", self.invoice_delete)
        r("GET", "/v1/invoices/{id}/lines", self.invoice_lines)
        r("POST", "/v1/invoices/{id}/finalize", self.invoice_finalize)
        r("POST", "/v1/invoices/{id}/send", self.invoice_send)
        r("POST", "/v1/invoices/{id}/pay", self.invoice_pay)
        r("POST", "/v1/invoices/{id}/void", self.invoice_void)
        r("POST", "/v1/invoices/{id}/mark_uncollectible", self.invoice_mark_uncollectible)
        r("POST", "/v1/invoiceitems", self.invoiceitem_create)
        r("GET", "/v1/invoiceitems", self.invoiceitem_list)
        r("GET", "/v1/invoiceitems/{id}", self.invoiceitem_retrieve)
        r("POST", "/v1/invoiceitems/{id}", self.invoiceitem_update)
        r("DELETE", "/v1/invoiceitems/{id}", self.invoiceitem_delete)
        r("POST", "/v1/checkout/sessions", self.checkout_create)
        r("GET", "/v1/checkout/sessions", self.checkout_list)
        r("GET", "/v1/checkout/sessions/{id}", self.checkout_retrieve)
        r("POST", "/v1/checkout/sessions/{id}/expire", self.checkout_expire)
        r("GET", "/v1/checkout/sessions/{id}/line_items", self.checkout_line_items)
        r("POST", "/v1/setup_intents", self.setup_intent_create)
        r("GET", "/v1/setup_intents", self.setup_intent_list)
        r("GET", "/v1/setup_intents/{id}", self.setup_intent_retrieve)
        r("POST", "/v1/setup_intents/{id}", self.setup_intent_update)
        r("POST", "/v1/setup_intents/{id}/confirm", self.setup_intent_confirm)
        r("POST", "/v1/setup_intents/{id}/cancel", self.setup_intent_cancel)
        r("POST", "/v1/payment_intents", self.payment_intent_create)
        r("GET", "/v1/payment_intents", self.payment_intent_list)
        r("GET", "/v1/payment_intents/{id}", self.payment_intent_retrieve)
        r("POST", "/v1/payment_intents/{id}", self.payment_intent_update)
        r("POST", "/v1/payment_intents/{id}/confirm", self.payment_intent_confirm)
        r("POST", "/v1/payment_intents/{id}/cancel", self.payment_intent_cancel)
        r("POST", "/v1/payment_methods", self.payment_method_create)
        r("GET", "/v1/payment_methods", self.payment_method_list)
        r("GET", "/v1/payment_methods/{id}", self.payment_method_retrieve)
        r("POST", "/v1/payment_methods/{id}", self.payment_method_update)
        r("POST", "/v1/payment_methods/{id}/attach", self.payment_method_attach)
        r("POST", "/v1/payment_methods/{id}/detach", self.payment_method_detach)
        r("GET", "/v1/charges", self.charge_list)
        r("GET", "/v1/charges/{id}", self.charge_retrieve)
        r("GET", "/v1/charges/{id}/refunds", self.charge_refunds)
        r("POST", "/v1/refunds", self.refund_create)
        r("GET", "/v1/refunds", self.refund_list)
        r("GET", "/v1/refunds/{id}", self.refund_retrieve)
        r("POST", "/v1/refunds/{id}", self.refund_update)
        r("POST", "/v1/refunds/{id}/cancel", self.refund_cancel)
        r("GET", "/v1/disputes", self.dispute_list)
        r("GET", "/v1/disputes/{id}", self.dispute_retrieve)
        r("POST", "/v1/disputes/{id}", self.dispute_update)
        r("POST", "/v1/disputes/{id}/close", self.dispute_close)
        r("GET", "/v1/balance", self.balance_retrieve)
        r("GET", "/v1/events", self.event_list)
        r("GET", "/v1/events/{id}", self.event_retrieve)
        r("POST", "/v1/webhook_endpoints", self.webhook_endpoint_create)
        r("GET", "/v1/webhook_endpoints", self.webhook_endpoint_list)
        r("GET", "/v1/webhook_endpoints/{id}", self.webhook_endpoint_retrieve)
        r("POST", "/v1/webhook_endpoints/{id}", self.webhook_endpoint_update)
        r("DELETE", "/v1/webhook_endpoints/{id}", self.webhook_endpoint_delete)

    def _route(self, method: str, template: str, fn: Callable[..., Any]) -> None:
        pattern = re.compile("^" + template.replace("{id}", "([^/]+)") + "$")
        self.routes.append((method, pattern, fn))

    def match(self, method: str, path: str) -> tuple[Callable[..., Any], tuple[str, ...]] | None:
        for m, pattern, fn in self.routes:
            found = pattern.match(path)
            if m == method and found:
                return fn, found.groups()
        return None
