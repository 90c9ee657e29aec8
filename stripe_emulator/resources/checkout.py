"""Checkout sessions: setup and payment mode, the hosted page's completion, expiry."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from stripe_emulator import money
from stripe_emulator.errors import invalid, missing_param, state
from stripe_emulator.resources.base import (
    Obj,
    Params,
    check,
    currency_param,
    merge_metadata,
    text,
)
from stripe_emulator.resources.payments import Payments
from stripe_emulator.store import Account, as_int, new_id, paginate


class Checkout(Payments):
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
            self._check_charge_amount(total, session["currency"], param="line_items")
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
        self._schedule_expiry(acct, session["id"], expires_at)
        return session

    def _schedule_expiry(self, acct: Account, sid: str, expires_at: int) -> None:
        """The session expires by itself at `expires_at` on the emulator clock (advance it to get there)."""

        def expire() -> None:
            with self.emu.lock:
                session = acct.get(sid, "checkout.session")
                if session is not None:
                    self._expire_if_due(acct, session)

        self.emu.scheduler.at(expires_at, expire)

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
        if cus is not None and cus.get("deleted"):
            raise state(f"The customer of this Checkout Session ({cus['id']}) has been deleted.")
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
