"""Payment methods (cards and Stripe's test tokens) and setup intents."""

from __future__ import annotations

import copy
import hashlib
import secrets
from typing import Any

from stripe_emulator import cards
from stripe_emulator.errors import StripeError, invalid, missing_param, no_such, state
from stripe_emulator.resources.base import (
    Base,
    Obj,
    Params,
    address,
    check,
    merge_metadata,
    text,
)
from stripe_emulator.store import Account, as_bool, as_int, new_id, paginate


class PaymentMethods(Base):
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
        if cus.get("deleted"):
            raise no_such("customer", cus["id"], "customer")
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
