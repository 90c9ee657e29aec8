"""Payment intents and charges: confirming a card, declines, authentication."""

from __future__ import annotations

import copy
import secrets

from stripe_emulator import cards, money
from stripe_emulator.errors import StripeError, invalid, state
from stripe_emulator.resources.base import (
    AUTH_REQUIRED,
    LIVE_CARD,
    Obj,
    Params,
    check,
    currency_param,
    merge_metadata,
    text,
)
from stripe_emulator.resources.disputes import Disputes
from stripe_emulator.store import Account, as_bool, as_int, new_id, strip_private


class Payments(Disputes):
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
            "balance_transaction": None,
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
            funds = self._funds(acct, "charge", ok_charge["amount"], ok_charge["currency"], ok_charge["id"])
            ok_charge["balance_transaction"] = funds["id"]
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
                self._attach(acct, pm, acct.objects[pi["customer"]])
            self.emit(acct, "charge.succeeded", ok_charge)
            self.emit(acct, "payment_intent.succeeded", pi)
            if card.after == "dispute":
                self._schedule_dispute(acct, ok_charge["id"])
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

    def _check_charge_amount(self, amount: int, currency: str, param: str = "amount") -> None:
        """Stripe's per-currency minimum charge amount and the three-decimal rule, as a PaymentIntent enforces them."""
        if amount < money.minimum_charge(currency):
            raise StripeError(400, money.below_minimum_message(currency), code="amount_too_small", param=param)
        if not money.three_decimal_ok(amount, currency):
            raise invalid(
                f"Invalid amount {amount} for {currency.upper()}: amounts in three-decimal currencies must end in 0 "
                "(a multiple of 10 minor units). See https://stripe.com/docs/currencies#three-decimal.",
                param=param,
                code="invalid_charge_amount",
            )

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
        self._check_charge_amount(amount, currency)
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
            self._check_charge_amount(pi["amount"], pi["currency"])
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

    def charge_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "customer", "ending_before", "limit", "payment_intent", "starting_after"})
        customer, pi = params.get("customer"), params.get("payment_intent")
        return self.listing(
            acct,
            "charge",
            params,
            "/v1/charges",
            lambda c: (customer is None or c["customer"] == customer) and (pi is None or c["payment_intent"] == pi),
        )
