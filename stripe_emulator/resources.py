"""Stripe's v1 endpoints the product uses, with Stripe's parameters, object shapes, state machines and events."""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from stripe_emulator import cards, money
from stripe_emulator.errors import StripeError, invalid, missing_param, no_such, state, unknown_param
from stripe_emulator.store import Account, as_bool, as_int, created_filter, new_id, paginate, strip_private

if TYPE_CHECKING:
    from stripe_emulator.server import StripeEmulator

API_VERSION = "2020-08-27"
Obj = dict[str, Any]
Params = dict[str, Any]

NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. "
    "Please consider adding a default payment method."
)
LIVE_CARD = (
    "Your card was declined. Your request was in test mode, but used a non test (live) card. "
    "For a list of valid test cards, visit: https://stripe.com/docs/testing."
)
AUTH_REQUIRED = "Your card was declined. This transaction requires authentication."

COMMON = {"expand"}


def check(params: Params, allowed: set[str], required: tuple[str, ...] = ()) -> None:
    for key in params:
        if key not in allowed and key not in COMMON:
            raise unknown_param(key)
    for key in required:
        if params.get(key) in (None, ""):
            raise missing_param(key)


def text(params: Params, key: str, default: str | None = None) -> str | None:
    value = params.get(key, default)
    if value is None or value == "":
        return None if value == "" else default
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {value!r}", param=key)
    if len(value) > 5000:
        raise invalid(f"Invalid {key}: must be at most 5000 characters", param=key)
    return value


def merge_metadata(current: dict[str, str], value: Any) -> dict[str, str]:
    if value is None:
        return current
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", param="metadata")
    result = dict(current)
    for key, v in value.items():
        if len(key) > 40:
            raise invalid("Metadata keys can have up to 40 characters.", param=f"metadata[{key}]")
        if v == "":
            result.pop(key, None)
        elif not isinstance(v, str) or len(v) > 500:
            raise invalid("Metadata values can have up to 500 characters.", param=f"metadata[{key}]")
        else:
            result[key] = v
    if len(result) > 50:
        raise invalid("You can have up to 50 metadata keys.", param="metadata")
    return result


def currency_param(params: Params, key: str = "currency") -> str | None:
    value = params.get(key)
    if value is None:
        return None
    value = str(value).lower()
    if value not in money.KNOWN:
        raise invalid(f"Invalid currency: {value}. Stripe currently supports these currencies: ...", param=key)
    return value


def address(value: Any) -> Obj | None:
    if not isinstance(value, dict):
        return None
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return {k: (value.get(k) or None) for k in keys}


class Api:
    """Endpoint implementations. Every method runs under the emulator lock."""

    def __init__(self, emulator: StripeEmulator) -> None:
        self.emu = emulator
        self.ctx = threading.local()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        r = self._route
        r("POST", "/v1/customers", self.customer_create)
        r("GET", "/v1/customers", self.customer_list)
        r("GET", "/v1/customers/search", self.customer_search)
        r("GET", "/v1/customers/{id}", self.customer_retrieve)
        r("POST", "/v1/customers/{id}", self.customer_update)
        r("DELETE", "/v1/customers/{id}", self.customer_delete)
        r("GET", "/v1/customers/{id}/payment_methods", self.customer_payment_methods)
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
        r("GET", "/v1/charges/{id}", self.charge_retrieve)
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

    # ------------------------------------------------------------------ shared

    def now(self) -> int:
        return int(self.emu.clock.now())

    def emit(self, acct: Account, type_: str, obj: Obj, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": strip_private(copy.deepcopy(obj))}
        if previous:
            data["previous_attributes"] = strip_private(copy.deepcopy(previous))
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": getattr(self.ctx, "request_id", None),
                "idempotency_key": getattr(self.ctx, "idempotency_key", None),
            },
            "type": type_,
        }
        acct.put(event)
        event["pending_webhooks"] = self.emu.webhooks.publish(acct, strip_private(event))
        return event

    def emit_updated(self, acct: Account, type_: str, obj: Obj, before: Obj) -> None:
        previous = {k: v for k, v in before.items() if obj.get(k) != v and not k.startswith("_")}
        if previous:
            self.emit(acct, type_, obj, previous)

    def fetch(self, acct: Account, object_id: str, kind: str, label: str, param: str = "id") -> Obj:
        obj = acct.get(object_id, kind)
        if obj is None or obj.get("deleted"):
            raise no_such(label, object_id, param)
        return obj

    def listing(self, acct: Account, kind: str, params: Params, url: str, where: Callable[[Obj], bool]) -> Obj:
        filt = created_filter(params)
        return paginate(acct.all(kind, lambda o: where(o) and filt(o)), params, url)

    def base_url(self) -> str:
        return self.emu.public_url

    # ------------------------------------------------------------------ customers

    CUSTOMER_PARAMS = {
        "address",
        "balance",
        "description",
        "email",
        "invoice_prefix",
        "invoice_settings",
        "metadata",
        "name",
        "next_invoice_sequence",
        "payment_method",
        "phone",
        "preferred_locales",
        "shipping",
        "tax_exempt",
        "tax_id_data",
        "tax",
        "test_clock",
        "coupon",
        "promotion_code",
        "source",
        "cash_balance",
    }

    def customer_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.CUSTOMER_PARAMS)
        cus: Obj = {
            "id": new_id("cus_", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": self.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": None,
            "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
            "livemode": False,
            "metadata": {},
            "name": None,
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        acct.put(cus)
        self._apply_customer(acct, cus, params, creating=True)
        self.emit(acct, "customer.created", cus)
        return cus

    def _apply_customer(self, acct: Account, cus: Obj, params: Params, creating: bool = False) -> None:
        for key in ("description", "email", "name", "phone"):
            if key in params:
                cus[key] = text(params, key)
        if "address" in params:
            cus["address"] = address(params["address"])
        if "balance" in params:
            cus["balance"] = as_int(params["balance"], "balance")
        if "invoice_prefix" in params:
            prefix = str(params["invoice_prefix"])
            if not re.fullmatch(r"[A-Z0-9]{3,12}", prefix):
                raise invalid("Invoice prefix must be 3-12 uppercase letters or numbers.", param="invoice_prefix")
            cus["invoice_prefix"] = prefix
        if "preferred_locales" in params:
            locales = params["preferred_locales"]
            cus["preferred_locales"] = locales if isinstance(locales, list) else []
        if "tax_exempt" in params:
            if params["tax_exempt"] not in ("none", "exempt", "reverse"):
                raise invalid("Invalid tax_exempt", param="tax_exempt")
            cus["tax_exempt"] = params["tax_exempt"]
        cus["metadata"] = merge_metadata(cus["metadata"], params.get("metadata"))
        if creating and params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            self._attach(acct, pm, cus)
        settings = params.get("invoice_settings")
        if isinstance(settings, dict) and "default_payment_method" in settings:
            pm_id = settings["default_payment_method"]
            if pm_id == "":
                cus["invoice_settings"]["default_payment_method"] = None
            else:
                found = acct.get(pm_id, "payment_method")
                if found is None or found.get("customer") != cus["id"]:
                    raise invalid(
                        f"The customer does not have a payment method with the ID {pm_id}. The payment method "
                        "must be attached to the customer.",
                        param="invoice_settings[default_payment_method]",
                        code="resource_missing",
                    )
                cus["invoice_settings"]["default_payment_method"] = pm_id
        if isinstance(settings, dict) and "footer" in settings:
            cus["invoice_settings"]["footer"] = settings["footer"] or None

    def customer_retrieve(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, set())
        obj = acct.get(cid, "customer")
        if obj is None:
            raise no_such("customer", cid)
        return obj

    def customer_update(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, self.CUSTOMER_PARAMS - {"payment_method", "tax_id_data", "test_clock"} | {"default_source"})
        cus = self.fetch(acct, cid, "customer", "customer")
        before = copy.deepcopy(cus)
        self._apply_customer(acct, cus, params)
        self.emit_updated(acct, "customer.updated", cus, before)
        return cus

    def customer_delete(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, set())
        cus = self.fetch(acct, cid, "customer", "customer")
        self.emit(acct, "customer.deleted", cus)
        deleted = {"id": cid, "object": "customer", "deleted": True}
        acct.put(deleted)
        return deleted

    def customer_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "email", "ending_before", "limit", "starting_after", "test_clock"})
        email = params.get("email")
        return self.listing(acct, "customer", params, "/v1/customers", lambda c: email is None or c["email"] == email)

    _CLAUSE = re.compile(
        r"""\s*(-?)(metadata\[\s*(['"])(?P<mkey>.+?)\3\s*\]|(?P<field>[a-z_]+))\s*(?P<op>:|~)\s*"""
        r"""(?:(['"])(?P<value>.*?)\7|(?P<bare>\S+))\s*"""
    )

    def customer_search(self, acct: Account, params: Params) -> Obj:
        check(params, {"query", "limit", "page"}, ("query",))
        query = str(params["query"])
        clauses, joiner, pos = [], None, 0
        while pos < len(query):
            found = self._CLAUSE.match(query, pos)
            if not found:
                raise invalid(f"Invalid search query: {query}", param="query", code="parameter_invalid")
            clauses.append(found)
            pos = found.end()
            rest = query[pos:]
            op = re.match(r"(AND|OR)\s+", rest)
            if op:
                if joiner and joiner != op.group(1):
                    raise invalid("Search queries cannot mix AND and OR.", param="query")
                joiner = op.group(1)
                pos += op.end()
            elif rest.strip():
                raise invalid(f"Invalid search query: {query}", param="query")

        def test(cus: Obj, clause: re.Match[str]) -> bool:
            value = clause.group("value") if clause.group("value") is not None else clause.group("bare")
            if clause.group("mkey") is not None:
                actual = cus["metadata"].get(clause.group("mkey"))
            else:
                field = clause.group("field")
                if field not in ("email", "name", "phone", "description", "created"):
                    raise invalid(f"Field '{field}' is not supported for search on customers.", param="query")
                actual = cus.get(field)
            if clause.group("op") == "~":
                ok = actual is not None and value.lower() in str(actual).lower()
            else:
                ok = actual is not None and str(actual) == value
            return ok != (clause.group(1) == "-")

        def keep(cus: Obj) -> bool:
            results = [test(cus, c) for c in clauses]
            return any(results) if joiner == "OR" else all(results)

        items = acct.all("customer", keep)
        limit = as_int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be an integer between 1 and 100.", param="limit")
        offset = as_int(params["page"], "page") if params.get("page") else 0
        page = items[offset : offset + limit]
        more = len(items) > offset + limit
        return {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": str(offset + limit) if more else None,
            "url": "/v1/customers/search",
        }

    def customer_payment_methods(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, {"type", "limit", "starting_after", "ending_before"})
        self.fetch(acct, cid, "customer", "customer")
        kind = params.get("type", "card")
        return paginate(
            acct.all("payment_method", lambda p: p["customer"] == cid and p["type"] == kind),
            params,
            f"/v1/customers/{cid}/payment_methods",
        )

    # ------------------------------------------------------------------ products and prices

    PRODUCT_PARAMS = {
        "active",
        "description",
        "id",
        "images",
        "metadata",
        "name",
        "package_dimensions",
        "shippable",
        "statement_descriptor",
        "tax_code",
        "unit_label",
        "url",
        "default_price_data",
    }

    def product_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.PRODUCT_PARAMS, ("name",))
        pid = text(params, "id") or new_id("prod_", 14)
        existing = acct.get(pid, "product")
        if existing is not None and not existing.get("deleted"):
            raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
        now = self.now()
        prod: Obj = {
            "id": pid,
            "object": "product",
            "active": True,
            "created": now,
            "description": None,
            "images": [],
            "livemode": False,
            "metadata": {},
            "name": "",
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": None,
            "unit_label": None,
            "updated": now,
            "url": None,
        }
        self._apply_product(prod, params)
        acct.put(prod)
        self.emit(acct, "product.created", prod)
        return prod

    def _apply_product(self, prod: Obj, params: Params) -> None:
        for key in ("name", "description", "statement_descriptor", "unit_label", "url"):
            if key in params:
                prod[key] = text(params, key)
        if "active" in params:
            prod["active"] = as_bool(params["active"], "active")
        if "images" in params:
            prod["images"] = params["images"] if isinstance(params["images"], list) else []
        prod["metadata"] = merge_metadata(prod["metadata"], params.get("metadata"))
        prod["updated"] = self.now()

    def product_retrieve(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, pid, "product", "product")

    def product_update(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, self.PRODUCT_PARAMS - {"id", "default_price_data"} | {"default_price"})
        prod = self.fetch(acct, pid, "product", "product")
        before = copy.deepcopy(prod)
        self._apply_product(prod, params)
        self.emit_updated(acct, "product.updated", prod, before)
        return prod

    def product_delete(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, set())
        prod = self.fetch(acct, pid, "product", "product")
        if acct.all("price", lambda p: p["product"] == pid):
            raise state("This product cannot be deleted because it has one or more user-created prices.")
        self.emit(acct, "product.deleted", prod)
        deleted = {"id": pid, "object": "product", "deleted": True}
        acct.put(deleted)
        return deleted

    def product_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"active", "created", "ending_before", "ids", "limit", "shippable", "starting_after", "url"})
        active = as_bool(params["active"], "active") if "active" in params else None
        ids = params.get("ids")
        return self.listing(
            acct,
            "product",
            params,
            "/v1/products",
            lambda p: (active is None or p["active"] == active) and (not ids or p["id"] in ids),
        )

    PRICE_PARAMS = {
        "active",
        "billing_scheme",
        "currency",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "product_data",
        "recurring",
        "tax_behavior",
        "tiers",
        "tiers_mode",
        "transfer_lookup_key",
        "transform_quantity",
        "unit_amount",
        "unit_amount_decimal",
        "currency_options",
        "custom_unit_amount",
    }

    def price_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.PRICE_PARAMS, ("currency",))
        currency = currency_param(params)
        if params.get("product"):
            product_id = self.fetch(acct, params["product"], "product", "product", "product")["id"]
        elif isinstance(params.get("product_data"), dict):
            data = params["product_data"]
            if not data.get("name"):
                raise missing_param("product_data[name]")
            product_id = self.product_create(acct, {"name": data["name"], "metadata": data.get("metadata")})["id"]
        else:
            raise missing_param("product")
        if (params.get("billing_scheme") or "per_unit") != "per_unit":
            raise invalid("Only per_unit prices are supported by the emulator.", param="billing_scheme")
        unit_amount, unit_amount_decimal = self._unit_amount(params, required=True)
        recurring = params.get("recurring")
        rec_obj = None
        if isinstance(recurring, dict):
            interval = recurring.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval]", param="recurring[interval]")
            rec_obj = {
                "aggregate_usage": recurring.get("aggregate_usage"),
                "interval": interval,
                "interval_count": as_int(recurring.get("interval_count", 1), "recurring[interval_count]"),
                "usage_type": recurring.get("usage_type", "licensed"),
            }
        price: Obj = {
            "id": new_id("price_"),
            "object": "price",
            "active": as_bool(params.get("active", True), "active"),
            "billing_scheme": "per_unit",
            "created": self.now(),
            "currency": currency,
            "livemode": False,
            "lookup_key": text(params, "lookup_key"),
            "metadata": merge_metadata({}, params.get("metadata")),
            "nickname": text(params, "nickname"),
            "product": product_id,
            "recurring": rec_obj,
            "tax_behavior": params.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if rec_obj else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount_decimal,
        }
        acct.put(price)
        self.emit(acct, "price.created", price)
        return price

    def _unit_amount(self, params: Params, required: bool, prefix: str = "") -> tuple[int | None, str | None]:
        if params.get("unit_amount") not in (None, ""):
            amount = as_int(params["unit_amount"], prefix + "unit_amount")
            return amount, str(amount)
        if params.get("unit_amount_decimal") not in (None, ""):
            raw = str(params["unit_amount_decimal"])
            try:
                dec = Decimal(raw)
            except InvalidOperation:
                raise invalid(f"Invalid decimal: {raw}", param=prefix + "unit_amount_decimal") from None
            if not dec.is_finite() or -dec.as_tuple().exponent > 12:  # type: ignore[operator]
                raise invalid(f"Invalid decimal: {raw}", param=prefix + "unit_amount_decimal")
            return (int(dec) if dec == dec.to_integral_value() else None), format(dec.normalize(), "f")
        if required:
            raise missing_param(prefix + "unit_amount")
        return None, None

    def price_retrieve(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, pid, "price", "price")

    def price_update(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"active", "lookup_key", "metadata", "nickname", "tax_behavior", "transfer_lookup_key"})
        price = self.fetch(acct, pid, "price", "price")
        before = copy.deepcopy(price)
        if "active" in params:
            price["active"] = as_bool(params["active"], "active")
        for key in ("lookup_key", "nickname"):
            if key in params:
                price[key] = text(params, key)
        price["metadata"] = merge_metadata(price["metadata"], params.get("metadata"))
        self.emit_updated(acct, "price.updated", price, before)
        return price

    def price_list(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {
                "active",
                "created",
                "currency",
                "ending_before",
                "limit",
                "lookup_keys",
                "product",
                "recurring",
                "starting_after",
                "type",
            },
        )
        active = as_bool(params["active"], "active") if "active" in params else None
        product, currency, kind = params.get("product"), params.get("currency"), params.get("type")
        lookup_keys = params.get("lookup_keys")
        return self.listing(
            acct,
            "price",
            params,
            "/v1/prices",
            lambda p: (
                (active is None or p["active"] == active)
                and (product is None or p["product"] == product)
                and (currency is None or p["currency"] == currency)
                and (kind is None or p["type"] == kind)
                and (not lookup_keys or p["lookup_key"] in lookup_keys)
            ),
        )

    # ------------------------------------------------------------------ invoices

    INVOICE_PARAMS = {
        "account_tax_ids",
        "application_fee_amount",
        "auto_advance",
        "automatic_tax",
        "collection_method",
        "currency",
        "custom_fields",
        "customer",
        "days_until_due",
        "default_payment_method",
        "default_source",
        "default_tax_rates",
        "description",
        "discounts",
        "due_date",
        "footer",
        "metadata",
        "on_behalf_of",
        "payment_settings",
        "pending_invoice_items_behavior",
        "statement_descriptor",
        "subscription",
        "transfer_data",
    }

    def invoice_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.INVOICE_PARAMS, ("customer",))
        cus = self.fetch(acct, params["customer"], "customer", "customer", "customer")
        method = params.get("collection_method", "charge_automatically")
        if method not in ("charge_automatically", "send_invoice"):
            raise invalid("Invalid collection_method", param="collection_method")
        now = self.now()
        due_date = None
        if method == "send_invoice":
            if params.get("due_date"):
                due_date = as_int(params["due_date"], "due_date")
            elif params.get("days_until_due") not in (None, ""):
                days = as_int(params["days_until_due"], "days_until_due")
                if days < 0:
                    raise invalid("days_until_due must be positive", param="days_until_due")
                due_date = now + days * 86400
            else:
                raise missing_param("days_until_due")
        elif params.get("days_until_due") or params.get("due_date"):
            raise invalid(
                "Invoices with `charge_automatically` collection method cannot have a due date.",
                param="days_until_due" if params.get("days_until_due") else "due_date",
            )
        currency = currency_param(params) or cus["currency"] or "usd"
        inv: Obj = {
            "id": new_id("in_"),
            "object": "invoice",
            "account_country": "US",
            "account_name": "Stripe Emulator",
            "account_tax_ids": None,
            "amount_due": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "application_fee_amount": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": as_bool(params.get("auto_advance", False), "auto_advance"),
            "automatic_tax": {"enabled": False, "status": None},
            "billing_reason": "manual",
            "charge": None,
            "collection_method": method,
            "created": now,
            "currency": currency,
            "custom_fields": None,
            "customer": cus["id"],
            "customer_address": cus["address"],
            "customer_email": cus["email"],
            "customer_name": cus["name"],
            "customer_phone": cus["phone"],
            "customer_shipping": cus["shipping"],
            "customer_tax_exempt": cus["tax_exempt"],
            "customer_tax_ids": [],
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": text(params, "description"),
            "discount": None,
            "discounts": [],
            "due_date": due_date,
            "ending_balance": None,
            "footer": text(params, "footer"),
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "last_finalization_error": None,
            "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "paid": False,
            "paid_out_of_band": False,
            "payment_intent": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None},
            "period_end": now,
            "period_start": now,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "quote": None,
            "receipt_number": None,
            "starting_balance": 0,
            "statement_descriptor": text(params, "statement_descriptor"),
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": None,
            "subtotal": 0,
            "tax": None,
            "test_clock": None,
            "total": 0,
            "total_discount_amounts": [],
            "total_tax_amounts": [],
            "transfer_data": None,
            "webhooks_delivered_at": None,
            "_currency_explicit": "currency" in params or cus["currency"] is not None,
        }
        if method == "send_invoice" and params.get("days_until_due") not in (None, ""):
            inv["days_until_due"] = as_int(params["days_until_due"], "days_until_due")
        inv["lines"]["url"] = f"/v1/invoices/{inv['id']}/lines"
        if params.get("default_payment_method"):
            inv["default_payment_method"] = self._customer_pm(acct, cus, params["default_payment_method"])
        behavior = params.get("pending_invoice_items_behavior", "exclude")
        if behavior not in ("include", "include_and_require", "exclude"):
            raise invalid("Invalid pending_invoice_items_behavior", param="pending_invoice_items_behavior")
        pending = []
        if behavior != "exclude":
            pending = acct.all("invoiceitem", lambda i: i["customer"] == cus["id"] and i["invoice"] is None)
            if not pending and behavior == "include_and_require":
                raise state("Nothing to invoice for customer", code="invoice_no_customer_line_items", param="customer")
        acct.put(inv)
        for item in pending:
            if item["currency"] != inv["currency"] and inv["_currency_explicit"]:
                continue
            inv["currency"] = item["currency"]
            inv["_currency_explicit"] = True
            item["invoice"] = inv["id"]
        self._recompute(acct, inv)
        self.emit(acct, "invoice.created", inv)
        return inv

    def _customer_pm(self, acct: Account, cus: Obj, pm_id: str) -> str:
        pm = acct.get(pm_id, "payment_method")
        if pm is None:
            raise no_such("PaymentMethod", pm_id, "default_payment_method")
        if pm["customer"] != cus["id"]:
            raise invalid(
                f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
                "attached to the customer.",
                param="default_payment_method",
                code="resource_missing",
            )
        return pm_id

    def _items_of(self, acct: Account, inv: Obj) -> list[Obj]:
        items = acct.all("invoiceitem", lambda i: i["invoice"] == inv["id"])
        items.sort(key=lambda i: acct.order[i["id"]])
        return items

    def _line(self, item: Obj) -> Obj:
        return {
            "id": item["_line_id"],
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "discount_amounts": [],
            "discountable": item["discountable"],
            "discounts": [],
            "invoice_item": item["id"],
            "livemode": False,
            "metadata": copy.deepcopy(item["metadata"]),
            "period": copy.deepcopy(item["period"]),
            "price": copy.deepcopy(item["price"]),
            "proration": False,
            "proration_details": {"credited_items": None},
            "quantity": item["quantity"],
            "subscription": None,
            "tax_amounts": [],
            "tax_rates": [],
            "type": "invoiceitem",
        }

    def _recompute(self, acct: Account, inv: Obj) -> None:
        """Totals from the items, in integer minor units: subtotal = total = Σ amounts (no tax or discounts)."""
        lines = [self._line(i) for i in self._items_of(acct, inv)]
        inv["_lines"] = lines
        inv["lines"] = {
            "object": "list",
            "data": lines[:10],
            "has_more": len(lines) > 10,
            "total_count": len(lines),
            "url": f"/v1/invoices/{inv['id']}/lines",
        }
        total = sum(line["amount"] for line in lines)
        inv["subtotal"] = total
        inv["total"] = total
        if inv["status"] == "draft":
            inv["amount_due"] = max(total + inv["starting_balance"], 0)
            inv["amount_remaining"] = inv["amount_due"] - inv["amount_paid"]
        if lines:
            inv["period_start"] = min(line["period"]["start"] for line in lines)
            inv["period_end"] = max(line["period"]["end"] for line in lines)

    def invoice_retrieve(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, iid, "invoice", "invoice")

    def invoice_lines(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, {"limit", "starting_after", "ending_before"})
        inv = self.fetch(acct, iid, "invoice", "invoice")
        lines = list(inv.get("_lines", []))
        # Lines are listed in invoice order, not newest-first.
        return paginate(lines, params, f"/v1/invoices/{iid}/lines")

    def invoice_update(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, self.INVOICE_PARAMS - {"customer", "pending_invoice_items_behavior", "subscription", "currency"})
        inv = self.fetch(acct, iid, "invoice", "invoice")
        before = copy.deepcopy(inv)
        after_finalize = {"metadata", "auto_advance", "description", "footer", "expand", "custom_fields"}
        if inv["status"] != "draft":
            for key in params:
                if key not in after_finalize:
                    raise state(
                        f"Finalized invoices can't be updated in this way ({key}).",
                        code="invoice_not_editable",
                        param=key,
                    )
            if inv["status"] in ("paid", "void") and "auto_advance" in params:
                raise state("You can't update auto_advance on a paid or void invoice.", code="invoice_not_editable")
        for key in ("description", "footer", "statement_descriptor"):
            if key in params:
                inv[key] = text(params, key)
        if "auto_advance" in params:
            inv["auto_advance"] = as_bool(params["auto_advance"], "auto_advance")
        if "collection_method" in params:
            if params["collection_method"] not in ("charge_automatically", "send_invoice"):
                raise invalid("Invalid collection_method", param="collection_method")
            inv["collection_method"] = params["collection_method"]
            if inv["collection_method"] == "charge_automatically":
                inv["due_date"] = None
                inv["days_until_due"] = None
        if params.get("days_until_due") not in (None, ""):
            inv["days_until_due"] = as_int(params["days_until_due"], "days_until_due")
            inv["due_date"] = inv["created"] + inv["days_until_due"] * 86400
        if params.get("due_date"):
            inv["due_date"] = as_int(params["due_date"], "due_date")
        if inv["collection_method"] == "send_invoice" and inv["due_date"] is None:
            raise missing_param("days_until_due")
        if "default_payment_method" in params:
            pm_id = params["default_payment_method"]
            cus = acct.objects[inv["customer"]]
            inv["default_payment_method"] = self._customer_pm(acct, cus, pm_id) if pm_id else None
        inv["metadata"] = merge_metadata(inv["metadata"], params.get("metadata"))
        self.emit_updated(acct, "invoice.updated", inv, before)
        return inv

    def invoice_delete(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] != "draft":
            raise state("You can only delete draft invoices.", code="invoice_not_editable")
        for item in self._items_of(acct, inv):
            acct.put({"id": item["id"], "object": "invoiceitem", "deleted": True})
        self.emit(acct, "invoice.deleted", inv)
        deleted = {"id": iid, "object": "invoice", "deleted": True}
        acct.put(deleted)
        return deleted

    def invoice_list(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {
                "collection_method",
                "created",
                "customer",
                "due_date",
                "ending_before",
                "limit",
                "starting_after",
                "status",
                "subscription",
                "test_clock",
            },
        )
        customer, status = params.get("customer"), params.get("status")
        if status is not None and status not in ("draft", "open", "paid", "uncollectible", "void"):
            raise invalid("Invalid status: must be one of draft, open, paid, uncollectible, or void", param="status")
        method = params.get("collection_method")
        return self.listing(
            acct,
            "invoice",
            params,
            "/v1/invoices",
            lambda i: (
                (customer is None or i["customer"] == customer)
                and (status is None or i["status"] == status)
                and (method is None or i["collection_method"] == method)
            ),
        )

    def invoice_finalize(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, {"auto_advance"})
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] != "draft":
            raise state(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_not_editable",
            )
        if "auto_advance" in params:
            inv["auto_advance"] = as_bool(params["auto_advance"], "auto_advance")
        self._finalize(acct, inv)
        return inv

    def _finalize(self, acct: Account, inv: Obj) -> None:
        cus = acct.objects[inv["customer"]]
        now = self.now()
        self._recompute(acct, inv)
        inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
        cus["next_invoice_sequence"] += 1
        if cus["currency"] is None:
            cus["currency"] = inv["currency"]
        inv["status"] = "open"
        inv["status_transitions"]["finalized_at"] = now
        inv["hosted_invoice_url"] = f"{self.base_url()}/invoice/{inv['id']}"
        inv["invoice_pdf"] = f"{self.base_url()}/invoice/{inv['id']}/pdf"
        inv["ending_balance"] = 0
        if inv["amount_due"] == 0:
            self.emit(acct, "invoice.finalized", inv)
            self._mark_paid(acct, inv, charge=None)
            return
        pi = self._new_payment_intent(
            acct,
            amount=inv["amount_remaining"],
            currency=inv["currency"],
            customer=inv["customer"],
            description=f"Payment for Invoice {inv['number']}",
        )
        pi["invoice"] = inv["id"]
        inv["payment_intent"] = pi["id"]
        self.emit(acct, "payment_intent.created", pi)
        if inv["collection_method"] == "charge_automatically" and inv["auto_advance"]:
            delay = self.emu.settings.collection_delay
            inv["next_payment_attempt"] = int(now + delay)
            self.emit(acct, "invoice.finalized", inv)
            self._schedule_collection(acct, inv, delay)
        else:
            self.emit(acct, "invoice.finalized", inv)

    def _schedule_collection(self, acct: Account, inv: Obj, delay: float) -> None:
        expected = inv["attempt_count"]

        def collect() -> None:
            with self.emu.lock:
                current = acct.get(inv["id"], "invoice")
                if (
                    current is None
                    or current["status"] != "open"
                    or not current["auto_advance"]
                    or current["attempt_count"] != expected
                ):
                    return
                self._attempt_invoice_payment(acct, current, None, off_session=True, authenticated=False)

        self.emu.scheduler.after(delay, collect)

    def _attempt_invoice_payment(
        self, acct: Account, inv: Obj, pm_id: str | None, *, off_session: bool, authenticated: bool
    ) -> StripeError | None:
        cus = acct.objects[inv["customer"]]
        pm_id = pm_id or inv["default_payment_method"] or cus["invoice_settings"]["default_payment_method"]
        before = copy.deepcopy(inv)
        inv["attempt_count"] += 1
        inv["attempted"] = True
        pi = acct.objects[inv["payment_intent"]]
        if pm_id is None:
            pi["last_payment_error"] = {
                "type": "invalid_request_error",
                "code": "payment_intent_payment_attempt_failed",
                "message": NO_PAYMENT_METHOD,
            }
            self._schedule_retry(acct, inv)
            self.emit(acct, "payment_intent.payment_failed", pi)
            self.emit(acct, "invoice.payment_failed", inv, {"attempt_count": before["attempt_count"]})
            return StripeError(400, NO_PAYMENT_METHOD, code="payment_intent_payment_attempt_failed")
        pi["payment_method"] = pm_id
        pi["amount"] = inv["amount_remaining"]
        error = self._confirm(acct, pi, off_session=off_session, authenticated=authenticated)
        if error is None:
            self._mark_paid(acct, inv, charge=pi["charges"]["data"][0]["id"])
            return None
        if pi["charges"]["data"]:
            inv["charge"] = pi["charges"]["data"][0]["id"]
        self._schedule_retry(acct, inv)
        if error.code == "authentication_required":
            self.emit(acct, "invoice.payment_action_required", inv)
        self.emit(acct, "invoice.payment_failed", inv, {"attempt_count": before["attempt_count"]})
        return error

    def _schedule_retry(self, acct: Account, inv: Obj) -> None:
        settings = self.emu.settings
        if inv["collection_method"] == "charge_automatically" and inv["attempt_count"] < settings.invoice_max_attempts:
            interval = settings.invoice_retry_interval
            inv["next_payment_attempt"] = int(self.emu.clock.now() + interval)
            if inv["auto_advance"]:
                self._schedule_collection(acct, inv, interval)
        else:
            inv["next_payment_attempt"] = None

    def _mark_paid(self, acct: Account, inv: Obj, charge: str | None, out_of_band: bool = False) -> None:
        now = self.now()
        inv["amount_paid"] = inv["amount_due"] if not out_of_band else 0
        inv["amount_remaining"] = 0
        inv["paid"] = True
        inv["paid_out_of_band"] = out_of_band
        inv["status"] = "paid"
        inv["charge"] = charge
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["paid_at"] = now
        if inv["payment_intent"] and out_of_band:
            self._cancel_pi(acct, acct.objects[inv["payment_intent"]], "void_invoice", emit=False)
        self.emit(acct, "invoice.paid", inv)
        if not out_of_band:
            self.emit(acct, "invoice.payment_succeeded", inv)

    def invoice_send(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["collection_method"] != "send_invoice":
            raise state(
                "You can only manually send an invoice if its collection method is 'send_invoice'.",
                code="invoice_not_editable",
            )
        if inv["status"] == "draft":
            self._finalize(acct, inv)
        if inv["status"] not in ("open", "paid", "uncollectible"):
            raise state(f"You can't send an invoice with status {inv['status']}.")
        self.emit(acct, "invoice.sent", inv)
        return inv

    def invoice_pay(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, {"forgive", "mandate", "off_session", "paid_out_of_band", "payment_method", "source"})
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] == "draft":
            self._finalize(acct, inv)
        if inv["status"] == "paid":
            raise state("Invoice is already paid", code="invoice_payment_intent_requires_action")
        if inv["status"] not in ("open", "uncollectible"):
            raise state(f"You cannot pay an invoice with status {inv['status']}.")
        if as_bool(params.get("paid_out_of_band", False), "paid_out_of_band"):
            self._mark_paid(acct, inv, charge=None, out_of_band=True)
            return inv
        pm_id = None
        if params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            pm_id = pm["id"]
        off_session = as_bool(params.get("off_session", True), "off_session")
        error = self._attempt_invoice_payment(acct, inv, pm_id, off_session=off_session, authenticated=False)
        if error is not None:
            raise error
        return inv

    def invoice_void(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] not in ("open", "uncollectible"):
            raise state(f"You can only void open or uncollectible invoices (this one is {inv['status']}).")
        inv["status"] = "void"
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["voided_at"] = self.now()
        if inv["payment_intent"]:
            self._cancel_pi(acct, acct.objects[inv["payment_intent"]], "void_invoice")
        self.emit(acct, "invoice.voided", inv)
        return inv

    def invoice_mark_uncollectible(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] != "open":
            raise state(f"You can only mark open invoices uncollectible (this one is {inv['status']}).")
        inv["status"] = "uncollectible"
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["marked_uncollectible_at"] = self.now()
        self.emit(acct, "invoice.marked_uncollectible", inv)
        return inv

    def pay_hosted_invoice(self, acct: Account, iid: str, card: str) -> Obj:
        """What paying on the hosted invoice page does: a one-off card payment, authenticated by the payer."""
        inv = self.fetch(acct, iid, "invoice", "invoice")
        if inv["status"] not in ("open", "uncollectible"):
            raise state(f"This invoice can't be paid (status {inv['status']}).")
        pm = self._payment_method_from_card(acct, card, "card[number]")
        error = self._attempt_invoice_payment(acct, inv, pm["id"], off_session=False, authenticated=True)
        if error is not None:
            raise error
        return inv

    # ------------------------------------------------------------------ invoice items

    ITEM_PARAMS = {
        "amount",
        "currency",
        "customer",
        "description",
        "discountable",
        "discounts",
        "invoice",
        "metadata",
        "period",
        "price",
        "price_data",
        "quantity",
        "subscription",
        "tax_rates",
        "unit_amount",
        "unit_amount_decimal",
        "tax_behavior",
        "tax_code",
    }

    def invoiceitem_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.ITEM_PARAMS, ("customer",))
        cus = self.fetch(acct, params["customer"], "customer", "customer", "customer")
        inv = None
        if params.get("invoice"):
            inv = self.fetch(acct, params["invoice"], "invoice", "invoice", "invoice")
            if inv["status"] != "draft":
                raise state(
                    "You can only add invoice items to draft invoices.", code="invoice_not_editable", param="invoice"
                )
            if inv["customer"] != cus["id"]:
                raise invalid("The invoice belongs to a different customer.", param="invoice")
        now = self.now()
        item: Obj = {
            "id": new_id("ii_"),
            "object": "invoiceitem",
            "amount": 0,
            "currency": "usd",
            "customer": cus["id"],
            "date": now,
            "description": None,
            "discountable": True,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "period": {"start": now, "end": now},
            "price": None,
            "proration": False,
            "quantity": 1,
            "subscription": None,
            "tax_rates": [],
            "test_clock": None,
            "unit_amount": None,
            "unit_amount_decimal": None,
            "_line_id": new_id("il_"),
        }
        self._apply_item(acct, item, params, cus, inv, creating=True)
        if inv is not None:
            if not inv["_currency_explicit"] and not self._items_of(acct, inv):
                inv["currency"] = item["currency"]
                inv["_currency_explicit"] = True
            if item["currency"] != inv["currency"]:
                raise invalid(
                    f"The currency of the invoice item ({item['currency']}) must match the invoice's "
                    f"({inv['currency']}).",
                    param="currency",
                )
            item["invoice"] = inv["id"]
        acct.put(item)
        if inv is not None:
            self._recompute(acct, inv)
        self.emit(acct, "invoiceitem.created", item)
        return item

    def _apply_item(self, acct: Account, item: Obj, params: Params, cus: Obj, inv: Obj | None, creating: bool) -> None:
        for key in ("description",):
            if key in params:
                item[key] = text(params, key)
        if "discountable" in params:
            item["discountable"] = as_bool(params["discountable"], "discountable")
        if isinstance(params.get("period"), dict):
            period = params["period"]
            if "start" not in period or "end" not in period:
                raise missing_param("period[start]" if "start" not in period else "period[end]")
            start, end = as_int(period["start"], "period[start]"), as_int(period["end"], "period[end]")
            if end < start:
                raise invalid("The period end must be after the period start.", param="period[end]")
            item["period"] = {"start": start, "end": end}
        item["metadata"] = merge_metadata(item["metadata"], params.get("metadata"))
        pricing = {k for k in ("amount", "unit_amount", "unit_amount_decimal", "price", "price_data") if k in params}
        if len(pricing) > 1:
            raise invalid(f"You may only specify one of these parameters: {', '.join(sorted(pricing))}.")
        quantity = as_int(params["quantity"], "quantity") if "quantity" in params else item["quantity"]
        if quantity < 0:
            raise invalid("Quantity must be positive.", param="quantity")
        if creating or pricing or "quantity" in params:
            currency = currency_param(params)
            if "price" in params:
                price = self.fetch(acct, params["price"], "price", "price", "price")
                item["price"] = copy.deepcopy(price)
                currency = price["currency"]
                unit, unit_dec = price["unit_amount"], price["unit_amount_decimal"]
                amount = money.round_minor(Decimal(unit_dec) * quantity)
            elif "price_data" in params:
                data = params["price_data"]
                if not isinstance(data, dict):
                    raise invalid("Invalid price_data", param="price_data")
                currency = currency_param(data) or currency
                if not data.get("product"):
                    raise missing_param("price_data[product]")
                self.fetch(acct, data["product"], "product", "product", "price_data[product]")
                unit, unit_dec = self._unit_amount(data, required=True, prefix="price_data[")
                amount = money.round_minor(Decimal(unit_dec or "0") * quantity)
            elif "amount" in params:
                amount = as_int(params["amount"], "amount")
                unit, unit_dec = amount, str(amount)
                if "quantity" in params and quantity != 1:
                    raise invalid("When passing `amount`, `quantity` must be 1 (or omitted).", param="quantity")
            elif "unit_amount" in params or "unit_amount_decimal" in params:
                unit, unit_dec = self._unit_amount(params, required=True)
                amount = money.round_minor(Decimal(unit_dec or "0") * quantity)
            elif creating:
                raise missing_param("amount")
            else:
                unit, unit_dec = item["unit_amount"], item["unit_amount_decimal"]
                amount = money.round_minor(Decimal(unit_dec or "0") * quantity)
            if creating:
                currency = currency or (inv["currency"] if inv and inv["_currency_explicit"] else None)
                currency = currency or cus["currency"]
                if currency is None:
                    raise missing_param("currency")
                item["currency"] = currency
            elif currency and currency != item["currency"]:
                raise invalid("You cannot change the currency of an invoice item.", param="currency")
            if abs(amount) > 99999999999:
                raise invalid("Amount must be no more than 999,999,999.99", param="amount")
            item["amount"] = amount
            item["unit_amount"] = unit
            item["unit_amount_decimal"] = unit_dec
            item["quantity"] = quantity

    def invoiceitem_retrieve(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, iid, "invoiceitem", "invoiceitem")

    def _editable_item(self, acct: Account, iid: str) -> tuple[Obj, Obj | None]:
        item = self.fetch(acct, iid, "invoiceitem", "invoiceitem")
        inv = acct.get(item["invoice"], "invoice") if item["invoice"] else None
        if inv is not None and inv["status"] != "draft":
            raise state("Invoice items on finalized invoices can't be changed.", code="invoice_not_editable")
        return item, inv

    def invoiceitem_update(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, self.ITEM_PARAMS - {"customer", "invoice", "currency", "subscription"})
        item, inv = self._editable_item(acct, iid)
        before = copy.deepcopy(item)
        self._apply_item(acct, item, params, acct.objects[item["customer"]], inv, creating=False)
        if inv is not None:
            self._recompute(acct, inv)
        self.emit_updated(acct, "invoiceitem.updated", item, before)
        return item

    def invoiceitem_delete(self, acct: Account, params: Params, iid: str) -> Obj:
        check(params, set())
        item, inv = self._editable_item(acct, iid)
        self.emit(acct, "invoiceitem.deleted", item)
        deleted = {"id": iid, "object": "invoiceitem", "deleted": True}
        acct.put(deleted)
        if inv is not None:
            self._recompute(acct, inv)
        return deleted

    def invoiceitem_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "customer", "ending_before", "invoice", "limit", "pending", "starting_after"})
        customer, invoice = params.get("customer"), params.get("invoice")
        pending = as_bool(params["pending"], "pending") if "pending" in params else None
        return self.listing(
            acct,
            "invoiceitem",
            params,
            "/v1/invoiceitems",
            lambda i: (
                (customer is None or i["customer"] == customer)
                and (invoice is None or i["invoice"] == invoice)
                and (pending is None or (i["invoice"] is None) == pending)
            ),
        )

    # ------------------------------------------------------------------ payment methods

    def _payment_method_from_card(
        self, acct: Account, number: str, param: str, exp: tuple[int, int] | None = None
    ) -> Obj:
        card = cards.lookup(str(number))
        if card is None:
            raise StripeError(
                402, "Your card number is incorrect.", type="card_error", code="incorrect_number", param=param
            )
        exp_month, exp_year = exp or (12, 2034)
        pm: Obj = {
            "id": new_id("pm_"),
            "object": "payment_method",
            "billing_details": {
                "address": {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")},
                "email": None,
                "name": None,
                "phone": None,
            },
            "card": {
                "brand": card.brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": card.country,
                "exp_month": exp_month,
                "exp_year": exp_year,
                "fingerprint": hashlib.sha256(card.number.encode()).hexdigest()[:16],
                "funding": card.funding,
                "generated_from": None,
                "last4": card.last4,
                "networks": {"available": [card.brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": self.now(),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
            "_card": card.number,
        }
        return acct.put(pm)

    def _resolve_payment_method(self, acct: Account, value: str, param: str) -> Obj:
        if value in cards.TOKENS:
            return self._payment_method_from_card(acct, cards.TOKENS[value], param)
        pm = acct.get(value, "payment_method")
        if pm is None:
            raise no_such("PaymentMethod", value, param)
        return pm

    def payment_method_create(self, acct: Account, params: Params) -> Obj:
        check(params, {"type", "card", "billing_details", "metadata", "customer", "payment_method"}, ("type",))
        if params["type"] != "card":
            raise invalid("The emulator supports only card payment methods.", param="type")
        card = params.get("card")
        if not isinstance(card, dict):
            raise missing_param("card")
        if card.get("token"):
            token = card["token"]
            if token not in cards.TOKENS:
                raise no_such("token", token, "card[token]")
            pm = self._payment_method_from_card(acct, cards.TOKENS[token], "card[token]")
        else:
            for key in ("number", "exp_month", "exp_year"):
                if not card.get(key):
                    raise missing_param(f"card[{key}]")
            month, year = as_int(card["exp_month"], "card[exp_month]"), as_int(card["exp_year"], "card[exp_year]")
            if not 1 <= month <= 12:
                raise StripeError(
                    402,
                    "Your card's expiration month is invalid.",
                    type="card_error",
                    code="invalid_expiry_month",
                    param="card[exp_month]",
                )
            if year < 100:
                year += 2000
            if year < 2000 + int(self.emu.clock.now() // (365.25 * 86400)) - 30 + 0:
                raise StripeError(
                    402,
                    "Your card's expiration year is invalid.",
                    type="card_error",
                    code="invalid_expiry_year",
                    param="card[exp_year]",
                )
            pm = self._payment_method_from_card(acct, card["number"], "card[number]", (month, year))
        details = params.get("billing_details")
        if isinstance(details, dict):
            for key in ("email", "name", "phone"):
                if key in details:
                    pm["billing_details"][key] = details[key] or None
            if isinstance(details.get("address"), dict):
                pm["billing_details"]["address"] = address(details["address"])
        pm["metadata"] = merge_metadata(pm["metadata"], params.get("metadata"))
        return pm

    def payment_method_retrieve(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, set())
        return self._resolve_payment_method(acct, pid, "payment_method")

    def payment_method_update(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"billing_details", "metadata", "card"})
        pm = self.fetch(acct, pid, "payment_method", "PaymentMethod")
        before = copy.deepcopy(pm)
        pm["metadata"] = merge_metadata(pm["metadata"], params.get("metadata"))
        details = params.get("billing_details")
        if isinstance(details, dict):
            for key in ("email", "name", "phone"):
                if key in details:
                    pm["billing_details"][key] = details[key] or None
        self.emit_updated(acct, "payment_method.updated", pm, before)
        return pm

    def _attach(self, acct: Account, pm: Obj, cus: Obj) -> None:
        if pm["customer"] == cus["id"]:
            return
        if pm["customer"] is not None:
            raise state(
                "The payment method you provided has already been attached to a customer.",
                code="payment_method_unexpected_state",
            )
        pm["customer"] = cus["id"]
        self.emit(acct, "payment_method.attached", pm)

    def payment_method_attach(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"customer"}, ("customer",))
        cus = self.fetch(acct, params["customer"], "customer", "customer", "customer")
        pm = self._resolve_payment_method(acct, pid, "payment_method")
        self._attach(acct, pm, cus)
        return pm

    def payment_method_detach(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, set())
        pm = self.fetch(acct, pid, "payment_method", "PaymentMethod")
        if pm["customer"] is None:
            raise state(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
        cus = acct.objects.get(pm["customer"])
        if cus and cus.get("invoice_settings", {}).get("default_payment_method") == pid:
            before = copy.deepcopy(cus)
            cus["invoice_settings"]["default_payment_method"] = None
            self.emit_updated(acct, "customer.updated", cus, before)
        pm["customer"] = None
        self.emit(acct, "payment_method.detached", pm)
        return pm

    def payment_method_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"customer", "type", "limit", "starting_after", "ending_before"})
        customer = params.get("customer")
        kind = params.get("type", "card")
        return paginate(
            acct.all(
                "payment_method",
                lambda p: (
                    p["customer"] is not None and (customer is None or p["customer"] == customer) and p["type"] == kind
                ),
            ),
            params,
            "/v1/payment_methods",
        )

    # ------------------------------------------------------------------ payment intents and charges

    def _new_payment_intent(
        self, acct: Account, *, amount: int, currency: str, customer: str | None, description: str | None = None
    ) -> Obj:
        pid = new_id("pi_")
        pi: Obj = {
            "id": pid,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "charges": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/charges?payment_intent={pid}",
            },
            "client_secret": f"{pid}_secret_{secrets.token_urlsafe(18)}",
            "confirmation_method": "automatic",
            "created": self.now(),
            "currency": currency,
            "customer": customer,
            "description": description,
            "invoice": None,
            "last_payment_error": None,
            "livemode": False,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
        return acct.put(pi)

    def _charge(
        self, acct: Account, pi: Obj, pm: Obj, card: cards.TestCard, ok: bool, error: StripeError | None
    ) -> Obj:
        cid = new_id("ch_")
        charge: Obj = {
            "id": cid,
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": pi["amount"] if ok else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": new_id("txn_") if ok else None,
            "billing_details": copy.deepcopy(pm["billing_details"]),
            "calculated_statement_descriptor": "STRIPE EMULATOR",
            "captured": ok,
            "created": self.now(),
            "currency": pi["currency"],
            "customer": pi["customer"],
            "description": pi["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": error.code if error else None,
            "failure_message": error.message if error else None,
            "fraud_details": {},
            "invoice": pi["invoice"],
            "livemode": False,
            "metadata": copy.deepcopy(pi["metadata"]),
            "on_behalf_of": None,
            "order": None,
            "outcome": {
                "network_status": "approved_by_network" if ok else "declined_by_network",
                "reason": None if ok else (card.decline_code or "generic_decline"),
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "Payment complete." if ok else "The bank did not return any further details.",
                "type": "authorized" if ok else "issuer_declined",
            },
            "paid": ok,
            "payment_intent": pi["id"],
            "payment_method": pm["id"],
            "payment_method_details": {
                "card": {
                    "brand": card.brand,
                    "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                    "country": card.country,
                    "exp_month": pm["card"]["exp_month"],
                    "exp_year": pm["card"]["exp_year"],
                    "fingerprint": pm["card"]["fingerprint"],
                    "funding": card.funding,
                    "installments": None,
                    "last4": card.last4,
                    "mandate": None,
                    "network": card.brand,
                    "three_d_secure": None,
                    "wallet": None,
                },
                "type": "card",
            },
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": f"{self.base_url()}/receipts/{cid}",
            "refunded": False,
            "refunds": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/charges/{cid}/refunds",
            },
            "review": None,
            "shipping": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded" if ok else "failed",
            "transfer_data": None,
            "transfer_group": None,
        }
        acct.put(charge)
        pi["charges"]["data"].insert(0, charge)
        pi["charges"]["total_count"] = len(pi["charges"]["data"])
        return charge

    def _confirm(self, acct: Account, pi: Obj, *, off_session: bool, authenticated: bool) -> StripeError | None:
        """Run the card: succeeded, declined or needing authentication. Returns the card error, if any."""
        pm = acct.objects[pi["payment_method"]]
        card = cards.lookup(pm["_card"])
        assert card is not None
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if card.outcome == "succeeded" or (card.outcome == "authentication_required" and authenticated):
            ok_charge = self._charge(acct, pi, pm, card, True, None)
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
                self._attach(acct, pm, acct.objects[pi["customer"]])
            self.emit(acct, "charge.succeeded", ok_charge)
            self.emit(acct, "payment_intent.succeeded", pi)
            return None
        if card.outcome == "authentication_required" and not off_session:
            pi["status"] = "requires_action"
            pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
            self.emit(acct, "payment_intent.requires_action", pi)
            return None
        if card.outcome == "authentication_required":
            code, decline, message = "authentication_required", "authentication_required", AUTH_REQUIRED
        elif card.decline_code == "live_mode_test_card":
            code, decline, message = "card_declined", "live_mode_test_card", LIVE_CARD
        else:
            decline = card.decline_code or "generic_decline"
            code = "card_declined"
            message = cards.DECLINE_MESSAGES.get(decline, "Your card was declined.")
        error = StripeError(402, message, type="card_error", code=code, decline_code=decline)
        charge = self._charge(acct, pi, pm, card, False, error) if code == "card_declined" else None
        public_pm = strip_private(copy.deepcopy(pm))
        pi["last_payment_error"] = {
            "type": "card_error",
            "code": code,
            "decline_code": decline,
            "message": message,
            "payment_method": public_pm,
            **({"charge": charge["id"]} if charge else {}),
        }
        pi["status"] = "requires_payment_method"
        pi["payment_method"] = None
        if charge:
            self.emit(acct, "charge.failed", charge)
        self.emit(acct, "payment_intent.payment_failed", pi)
        error.extra.update({"payment_method": public_pm, "payment_intent": strip_private(copy.deepcopy(pi))})
        if charge:
            error.extra["charge"] = charge["id"]
        return error

    def _cancel_pi(self, acct: Account, pi: Obj, reason: str, emit: bool = True) -> None:
        if pi["status"] in ("succeeded", "canceled"):
            return
        pi["status"] = "canceled"
        pi["canceled_at"] = self.now()
        pi["cancellation_reason"] = reason
        if emit:
            self.emit(acct, "payment_intent.canceled", pi)

    PI_PARAMS = {
        "amount",
        "currency",
        "customer",
        "confirm",
        "off_session",
        "payment_method",
        "payment_method_types",
        "description",
        "metadata",
        "setup_future_usage",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "capture_method",
        "confirmation_method",
        "error_on_requires_action",
        "return_url",
        "use_stripe_sdk",
        "mandate",
        "payment_method_options",
        "automatic_payment_methods",
    }

    def payment_intent_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.PI_PARAMS, ("amount", "currency"))
        amount = as_int(params["amount"], "amount")
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", param="amount")
        currency = currency_param(params)
        assert currency is not None
        customer = None
        if params.get("customer"):
            customer = self.fetch(acct, params["customer"], "customer", "customer", "customer")["id"]
        pi = self._new_payment_intent(
            acct, amount=amount, currency=currency, customer=customer, description=text(params, "description")
        )
        pi["metadata"] = merge_metadata({}, params.get("metadata"))
        if params.get("setup_future_usage"):
            if params["setup_future_usage"] not in ("on_session", "off_session"):
                raise invalid("Invalid setup_future_usage", param="setup_future_usage")
            pi["setup_future_usage"] = params["setup_future_usage"]
        if params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            self._check_pm_customer(pm, customer)
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        self.emit(acct, "payment_intent.created", pi)
        if as_bool(params.get("confirm", False), "confirm"):
            self._confirm_api(acct, pi, params)
        return pi

    def _check_pm_customer(self, pm: Obj, customer: str | None) -> None:
        if pm["customer"] is not None and pm["customer"] != customer:
            raise invalid(
                f"The provided PaymentMethod {pm['id']} belongs to a different customer.",
                param="payment_method",
            )

    def _confirm_api(self, acct: Account, pi: Obj, params: Params) -> None:
        off_session = as_bool(params.get("off_session", False), "off_session")
        if off_session and pi["customer"] is None:
            raise invalid("`off_session` can only be used with a customer.", param="off_session")
        if pi["payment_method"] is None:
            raise state(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        error = self._confirm(acct, pi, off_session=off_session, authenticated=False)
        if error is not None:
            raise error

    def payment_intent_confirm(self, acct: Account, params: Params, pid: str) -> Obj:
        check(
            params,
            {
                "payment_method",
                "off_session",
                "return_url",
                "mandate",
                "setup_future_usage",
                "error_on_requires_action",
                "payment_method_options",
                "receipt_email",
                "use_stripe_sdk",
            },
        )
        pi = self.fetch(acct, pid, "payment_intent", "payment_intent")
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise state(
                f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}.",
                code="payment_intent_unexpected_state",
            )
        if params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            self._check_pm_customer(pm, pi["customer"])
            pi["payment_method"] = pm["id"]
        if params.get("setup_future_usage"):
            pi["setup_future_usage"] = params["setup_future_usage"]
        self._confirm_api(acct, pi, params)
        return pi

    def payment_intent_retrieve(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"client_secret"})
        return self.fetch(acct, pid, "payment_intent", "payment_intent")

    def payment_intent_update(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"metadata", "description", "payment_method", "amount", "receipt_email"})
        pi = self.fetch(acct, pid, "payment_intent", "payment_intent")
        if pi["status"] in ("succeeded", "canceled"):
            raise state(
                f"This PaymentIntent's status is {pi['status']}; it cannot be updated.",
                code="payment_intent_unexpected_state",
            )
        if "description" in params:
            pi["description"] = text(params, "description")
        if "amount" in params:
            pi["amount"] = as_int(params["amount"], "amount")
        if params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        pi["metadata"] = merge_metadata(pi["metadata"], params.get("metadata"))
        return pi

    def payment_intent_cancel(self, acct: Account, params: Params, pid: str) -> Obj:
        check(params, {"cancellation_reason"})
        pi = self.fetch(acct, pid, "payment_intent", "payment_intent")
        if pi["status"] in ("succeeded", "canceled"):
            raise state(
                f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
                code="payment_intent_unexpected_state",
            )
        if pi["invoice"]:
            raise state(
                "You cannot cancel a PaymentIntent created by an invoice.", code="payment_intent_unexpected_state"
            )
        self._cancel_pi(acct, pi, params.get("cancellation_reason", "requested_by_customer"))
        return pi

    def payment_intent_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "customer", "ending_before", "limit", "starting_after"})
        customer = params.get("customer")
        return self.listing(
            acct,
            "payment_intent",
            params,
            "/v1/payment_intents",
            lambda p: customer is None or p["customer"] == customer,
        )

    def charge_retrieve(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, cid, "charge", "charge")

    # ------------------------------------------------------------------ setup intents

    def _new_setup_intent(self, acct: Account, customer: str | None, metadata: Any, usage: str = "off_session") -> Obj:
        sid = new_id("seti_")
        si: Obj = {
            "id": sid,
            "object": "setup_intent",
            "application": None,
            "cancellation_reason": None,
            "client_secret": f"{sid}_secret_{secrets.token_urlsafe(24)}",
            "created": self.now(),
            "customer": customer,
            "description": None,
            "last_setup_error": None,
            "latest_attempt": None,
            "livemode": False,
            "mandate": None,
            "metadata": merge_metadata({}, metadata),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_options": {"card": {"mandate_options": None, "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "single_use_mandate": None,
            "status": "requires_payment_method",
            "usage": usage,
        }
        acct.put(si)
        self.emit(acct, "setup_intent.created", si)
        return si

    def _succeed_setup(self, acct: Account, si: Obj, pm: Obj) -> None:
        si["payment_method"] = pm["id"]
        si["status"] = "succeeded"
        si["last_setup_error"] = None
        if si["customer"]:
            self._attach(acct, pm, acct.objects[si["customer"]])
        self.emit(acct, "setup_intent.succeeded", si)

    def setup_intent_create(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {
                "customer",
                "payment_method",
                "confirm",
                "usage",
                "payment_method_types",
                "metadata",
                "description",
                "return_url",
                "on_behalf_of",
                "payment_method_options",
                "mandate_data",
                "single_use",
            },
        )
        customer = None
        if params.get("customer"):
            customer = self.fetch(acct, params["customer"], "customer", "customer", "customer")["id"]
        usage = params.get("usage", "off_session")
        if usage not in ("on_session", "off_session"):
            raise invalid("Invalid usage", param="usage")
        si = self._new_setup_intent(acct, customer, params.get("metadata"), usage)
        si["description"] = text(params, "description")
        if params.get("payment_method"):
            pm = self._resolve_payment_method(acct, params["payment_method"], "payment_method")
            si["payment_method"] = pm["id"]
            si["status"] = "requires_confirmation"
        if as_bool(params.get("confirm", False), "confirm"):
            self.setup_intent_confirm(acct, {}, si["id"])
        return si

    def setup_intent_confirm(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, {"payment_method", "return_url", "mandate_data", "payment_method_options"})
        si = self.fetch(acct, sid, "setup_intent", "setup_intent")
        if si["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise state(
                f"You cannot confirm this SetupIntent because it has a status of {si['status']}.",
                code="setup_intent_unexpected_state",
            )
        if params.get("payment_method"):
            si["payment_method"] = self._resolve_payment_method(acct, params["payment_method"], "payment_method")["id"]
        if si["payment_method"] is None:
            raise state(
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                code="setup_intent_unexpected_state",
            )
        self._succeed_setup(acct, si, acct.objects[si["payment_method"]])
        return si

    def setup_intent_retrieve(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, {"client_secret"})
        return self.fetch(acct, sid, "setup_intent", "setup_intent")

    def setup_intent_update(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, {"metadata", "description", "payment_method", "customer"})
        si = self.fetch(acct, sid, "setup_intent", "setup_intent")
        si["metadata"] = merge_metadata(si["metadata"], params.get("metadata"))
        if "description" in params:
            si["description"] = text(params, "description")
        return si

    def setup_intent_cancel(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, {"cancellation_reason"})
        si = self.fetch(acct, sid, "setup_intent", "setup_intent")
        if si["status"] in ("succeeded", "canceled"):
            raise state(
                f"You cannot cancel this SetupIntent because it has a status of {si['status']}.",
                code="setup_intent_unexpected_state",
            )
        si["status"] = "canceled"
        si["cancellation_reason"] = params.get("cancellation_reason", "requested_by_customer")
        self.emit(acct, "setup_intent.canceled", si)
        return si

    def setup_intent_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "customer", "payment_method", "ending_before", "limit", "starting_after"})
        customer, pm = params.get("customer"), params.get("payment_method")
        return self.listing(
            acct,
            "setup_intent",
            params,
            "/v1/setup_intents",
            lambda s: (customer is None or s["customer"] == customer) and (pm is None or s["payment_method"] == pm),
        )

    # ------------------------------------------------------------------ checkout sessions

    CHECKOUT_PARAMS = {
        "after_expiration",
        "allow_promotion_codes",
        "automatic_tax",
        "billing_address_collection",
        "cancel_url",
        "client_reference_id",
        "consent_collection",
        "currency",
        "customer",
        "customer_creation",
        "customer_email",
        "customer_update",
        "discounts",
        "expires_at",
        "line_items",
        "locale",
        "metadata",
        "mode",
        "payment_intent_data",
        "payment_method_options",
        "payment_method_types",
        "phone_number_collection",
        "setup_intent_data",
        "shipping_address_collection",
        "shipping_options",
        "submit_type",
        "subscription_data",
        "success_url",
        "tax_id_collection",
    }

    def checkout_create(self, acct: Account, params: Params) -> Obj:
        check(params, self.CHECKOUT_PARAMS, ("success_url", "cancel_url"))
        mode = params.get("mode")
        if mode is None:
            raise missing_param("mode")
        if mode not in ("payment", "setup"):
            raise invalid(f"The emulator supports checkout modes payment and setup, not {mode}.", param="mode")
        customer = None
        if params.get("customer"):
            customer = self.fetch(acct, params["customer"], "customer", "customer", "customer")["id"]
            if params.get("customer_email"):
                raise invalid("You may only specify one of these parameters: customer, customer_email.")
        now = self.now()
        expires_at = as_int(params["expires_at"], "expires_at") if params.get("expires_at") else now + 86400
        if not now + 1800 <= expires_at <= now + 86400:
            raise invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.", param="expires_at"
            )
        cs_id = "cs_test_" + new_id("", 58)
        session: Obj = {
            "id": cs_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": None,
            "amount_total": None,
            "automatic_tax": {"enabled": False, "status": None},
            "billing_address_collection": None,
            "cancel_url": params["cancel_url"],
            "client_reference_id": text(params, "client_reference_id"),
            "consent": None,
            "consent_collection": None,
            "currency": currency_param(params),
            "customer": customer,
            "customer_creation": params.get("customer_creation"),
            "customer_details": None,
            "customer_email": text(params, "customer_email"),
            "expires_at": expires_at,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": merge_metadata({}, params.get("metadata")),
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_options": {},
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping": None,
            "shipping_address_collection": None,
            "shipping_options": [],
            "shipping_rate": None,
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": params["success_url"],
            "total_details": None,
            "url": f"{self.base_url()}/checkout/{cs_id}",
            "_line_items": [],
        }
        if mode == "setup":
            if params.get("line_items"):
                raise invalid("You cannot pass `line_items` in `setup` mode.", param="line_items")
            data = params.get("setup_intent_data") or {}
            si = self._new_setup_intent(acct, customer, data.get("metadata"))
            si["description"] = data.get("description")
            session["setup_intent"] = si["id"]
            session["payment_status"] = "no_payment_required"
        else:
            lines = params.get("line_items")
            if not isinstance(lines, list) or not lines:
                raise missing_param("line_items")
            session["_line_items"] = [self._checkout_line(acct, line, i) for i, line in enumerate(lines)]
            currencies = {li["currency"] for li in session["_line_items"]}
            if len(currencies) > 1:
                raise invalid("All line items must use the same currency.", param="line_items")
            total = sum(li["amount_total"] for li in session["_line_items"])
            session["currency"] = currencies.pop()
            session["amount_subtotal"] = total
            session["amount_total"] = total
            session["total_details"] = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}
            data = params.get("payment_intent_data") or {}
            pi = self._new_payment_intent(
                acct, amount=total, currency=session["currency"], customer=customer, description=data.get("description")
            )
            pi["metadata"] = merge_metadata({}, data.get("metadata"))
            if data.get("setup_future_usage"):
                pi["setup_future_usage"] = data["setup_future_usage"]
            session["payment_intent"] = pi["id"]
            self.emit(acct, "payment_intent.created", pi)
        acct.put(session)
        return session

    def _checkout_line(self, acct: Account, line: Any, index: int) -> Obj:
        param = f"line_items[{index}]"
        if not isinstance(line, dict):
            raise invalid("Invalid line item", param=param)
        quantity = as_int(line.get("quantity", 1), f"{param}[quantity]")
        if line.get("price"):
            price = copy.deepcopy(self.fetch(acct, line["price"], "price", "price", f"{param}[price]"))
        elif isinstance(line.get("price_data"), dict):
            data = line["price_data"]
            if isinstance(data.get("product_data"), dict):
                product = self.product_create(acct, {"name": data["product_data"].get("name", "")})["id"]
            elif data.get("product"):
                product = self.fetch(acct, data["product"], "product", "product", f"{param}[price_data][product]")["id"]
            else:
                raise missing_param(f"{param}[price_data][product_data]")
            price = self.price_create(
                acct,
                {
                    "currency": data.get("currency"),
                    "product": product,
                    **{k: data[k] for k in ("unit_amount", "unit_amount_decimal") if k in data},
                },
            )
        else:
            raise missing_param(f"{param}[price]")
        amount = money.round_minor(Decimal(price["unit_amount_decimal"]) * quantity)
        name = acct.objects[price["product"]]["name"]
        return {
            "id": new_id("li_"),
            "object": "item",
            "amount_discount": 0,
            "amount_subtotal": amount,
            "amount_tax": 0,
            "amount_total": amount,
            "currency": price["currency"],
            "description": name,
            "price": price,
            "quantity": quantity,
        }

    def checkout_retrieve(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, set())
        session = self.fetch(acct, sid, "checkout.session", "checkout.session")
        self._expire_if_due(acct, session)
        return session

    def _expire_if_due(self, acct: Account, session: Obj) -> None:
        if session["status"] == "open" and self.now() >= session["expires_at"]:
            self._expire(acct, session)

    def _expire(self, acct: Account, session: Obj) -> None:
        session["status"] = "expired"
        session["url"] = None
        if session["payment_intent"]:
            self._cancel_pi(acct, acct.objects[session["payment_intent"]], "abandoned")
        if session["setup_intent"]:
            si = acct.objects[session["setup_intent"]]
            if si["status"] not in ("succeeded", "canceled"):
                si["status"] = "canceled"
                si["cancellation_reason"] = "abandoned"
        self.emit(acct, "checkout.session.expired", session)

    def checkout_expire(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, set())
        session = self.fetch(acct, sid, "checkout.session", "checkout.session")
        if session["status"] != "open":
            raise state(
                f'Only Checkout Sessions with a status in ["open"] can be expired. This session has a '
                f'status of "{session["status"]}".'
            )
        self._expire(acct, session)
        return session

    def checkout_line_items(self, acct: Account, params: Params, sid: str) -> Obj:
        check(params, {"limit", "starting_after", "ending_before"})
        session = self.fetch(acct, sid, "checkout.session", "checkout.session")
        return paginate(list(session["_line_items"]), params, f"/v1/checkout/sessions/{sid}/line_items")

    def checkout_list(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {
                "customer",
                "payment_intent",
                "subscription",
                "ending_before",
                "limit",
                "starting_after",
                "customer_details",
                "status",
                "created",
            },
        )
        customer, pi = params.get("customer"), params.get("payment_intent")
        return paginate(
            acct.all(
                "checkout.session",
                lambda s: (customer is None or s["customer"] == customer) and (pi is None or s["payment_intent"] == pi),
            ),
            params,
            "/v1/checkout/sessions",
        )

    def complete_checkout(self, acct: Account, sid: str, card: str, email: str | None = None) -> Obj:
        """What a customer paying on the hosted checkout page does."""
        session = self.fetch(acct, sid, "checkout.session", "checkout.session")
        self._expire_if_due(acct, session)
        if session["status"] != "open":
            raise state(f"This Checkout Session is {session['status']}.")
        cus = acct.objects.get(session["customer"]) if session["customer"] else None
        if cus is None and session["customer_creation"] == "always":
            cus = self.customer_create(
                acct, {"email": email or session["customer_email"]} if (email or session["customer_email"]) else {}
            )
            session["customer"] = cus["id"]
        pm = self._payment_method_from_card(acct, card, "card[number]")
        payer_email = email or session["customer_email"] or (cus["email"] if cus else None)
        pm["billing_details"]["email"] = payer_email
        if session["mode"] == "setup":
            si = acct.objects[session["setup_intent"]]
            if cus is not None and si["customer"] is None:
                si["customer"] = cus["id"]
            self._succeed_setup(acct, si, pm)
        else:
            pi = acct.objects[session["payment_intent"]]
            if cus is not None and pi["customer"] is None:
                pi["customer"] = cus["id"]
            pi["payment_method"] = pm["id"]
            error = self._confirm(acct, pi, off_session=False, authenticated=True)
            if error is not None:
                raise error
            session["payment_status"] = "paid"
        session["status"] = "complete"
        session["url"] = None
        session["customer_details"] = {
            "address": None,
            "email": payer_email,
            "name": cus["name"] if cus else None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        self.emit(acct, "checkout.session.completed", session)
        return session

    # ------------------------------------------------------------------ events and webhook endpoints

    def event_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "delivery_success", "ending_before", "limit", "starting_after", "type", "types"})
        kind = params.get("type")
        types = params.get("types")
        if kind and types:
            raise invalid("You may only specify one of these parameters: type, types.")

        def wanted(e: Obj) -> bool:
            if kind:
                return bool(e["type"] == kind or (kind.endswith(".*") and e["type"].startswith(kind[:-1])))
            if types:
                return e["type"] in types
            return True

        return self.listing(acct, "event", params, "/v1/events", wanted)

    def event_retrieve(self, acct: Account, params: Params, eid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, eid, "event", "event")

    def webhook_endpoint_create(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {"url", "enabled_events", "description", "metadata", "api_version", "connect"},
            ("url", "enabled_events"),
        )
        endpoint: Obj = {
            "id": new_id("we_"),
            "object": "webhook_endpoint",
            "api_version": params.get("api_version"),
            "application": None,
            "created": self.now(),
            "description": text(params, "description"),
            "enabled_events": [],
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "status": "enabled",
            "url": "",
            "_secret": "whsec_" + secrets.token_hex(16),
        }
        self._apply_endpoint(endpoint, params)
        acct.put(endpoint)
        return {**endpoint, "secret": endpoint["_secret"]}

    def _apply_endpoint(self, endpoint: Obj, params: Params) -> None:
        if "url" in params:
            url = str(params["url"])
            if not re.match(r"^https?://[^\s/]+", url):
                raise invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
            endpoint["url"] = url
        if "enabled_events" in params:
            events = params["enabled_events"]
            if not isinstance(events, list) or not events:
                raise invalid("Invalid array", param="enabled_events")
            for name in events:
                if name != "*" and not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", str(name)):
                    raise invalid(f"Invalid enabled_events: {name}", param="enabled_events")
            endpoint["enabled_events"] = list(events)
        if "description" in params:
            endpoint["description"] = text(params, "description")
        if "disabled" in params:
            endpoint["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))

    def webhook_endpoint_retrieve(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")

    def webhook_endpoint_update(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, {"url", "enabled_events", "description", "metadata", "disabled"})
        endpoint = self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")
        self._apply_endpoint(endpoint, params)
        return endpoint

    def webhook_endpoint_delete(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, set())
        self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")
        deleted = {"id": wid, "object": "webhook_endpoint", "deleted": True}
        acct.put(deleted)
        return deleted

    def webhook_endpoint_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"ending_before", "limit", "starting_after"})
        return paginate(acct.all("webhook_endpoint"), params, "/v1/webhook_endpoints")
