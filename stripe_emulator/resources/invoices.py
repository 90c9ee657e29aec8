"""Invoices: totals, finalization, automatic collection and retries, pay, void, uncollectible."""

from __future__ import annotations

import copy

from stripe_emulator import money
from stripe_emulator.errors import StripeError, invalid, missing_param, no_such, state
from stripe_emulator.resources.base import (
    NO_PAYMENT_METHOD,
    Obj,
    Params,
    check,
    currency_param,
    merge_metadata,
    text,
)
from stripe_emulator.resources.checkout import Checkout
from stripe_emulator.store import Account, as_bool, as_int, new_id, paginate


class Invoices(Checkout):
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
            if item["currency"] == inv["currency"]:
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
        for line in lines:
            line["livemode"] = acct.livemode
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
            inv["starting_balance"] = self._applicable_balance(acct, inv)
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
            cus = self.fetch(acct, inv["customer"], "customer", "customer", "customer")
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
        cus = self.fetch(acct, inv["customer"], "customer", "customer", "customer")
        now = self.now()
        self._recompute(acct, inv)
        inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
        cus["next_invoice_sequence"] += 1
        before_customer = copy.deepcopy(cus)
        if cus["currency"] is None:
            cus["currency"] = inv["currency"]
        inv["status"] = "open"
        inv["status_transitions"]["finalized_at"] = now
        inv["hosted_invoice_url"] = f"{self.base_url()}/invoice/{inv['id']}"
        inv["invoice_pdf"] = f"{self.base_url()}/invoice/{inv['id']}/pdf"
        too_small = self._apply_customer_balance(acct, inv, cus)
        self.emit_updated(acct, "customer.updated", cus, before_customer)
        if inv["amount_due"] == 0 or too_small:
            self.emit(acct, "invoice.finalized", inv)
            self._mark_paid(acct, inv, charge=None, collected=False)
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

    def _apply_customer_balance(self, acct: Account, inv: Obj, cus: Obj) -> bool:
        """Apply the customer's credit (negative) or debit (positive) balance to the invoice at finalization, then
        carry an amount due below the currency's minimum charge to the balance as a debit. True when that happened:
        the invoice is then paid with `amount_paid` 0."""
        starting = inv["starting_balance"] = self._applicable_balance(acct, inv)
        net = inv["total"] + starting
        inv["amount_due"] = max(net, 0)
        inv["amount_remaining"] = inv["amount_due"] - inv["amount_paid"]
        ending = min(net, 0)
        if ending != starting:
            self._balance_transaction(acct, cus, ending - starting, "applied_to_invoice", inv["currency"], inv["id"])
        inv["ending_balance"] = ending
        if not 0 < inv["amount_remaining"] < money.minimum_charge(inv["currency"]):
            return False
        self._balance_transaction(acct, cus, inv["amount_remaining"], "invoice_too_small", inv["currency"], inv["id"])
        inv["ending_balance"] = cus["balance"]
        return True

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
        default = cus.get("invoice_settings", {}).get("default_payment_method")  # none once the customer is deleted
        pm_id = pm_id or inv["default_payment_method"] or default
        before = copy.deepcopy(inv)
        inv["attempt_count"] += 1
        inv["attempted"] = True
        pi = acct.objects[inv["payment_intent"]]
        refusal: StripeError | None = StripeError(400, NO_PAYMENT_METHOD, code="payment_intent_payment_attempt_failed")
        if pm_id is not None:
            refusal = None
            try:
                self._check_charge_amount(inv["amount_remaining"], inv["currency"])
            except StripeError as exc:
                refusal = exc
        if refusal is not None:
            pi["last_payment_error"] = {
                "type": "invalid_request_error",
                "code": refusal.code,
                "message": refusal.message,
            }
            self._schedule_retry(acct, inv)
            self.emit(acct, "payment_intent.payment_failed", pi)
            self.emit(acct, "invoice.payment_failed", inv, {"attempt_count": before["attempt_count"]})
            return refusal
        assert pm_id is not None
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
            # An invoice's payment needing authentication waits for the customer: the intent stays requires_action
            # and the customer completes it on the hosted invoice page.
            pi["status"] = "requires_action"
            pi["payment_method"] = pm_id
            pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
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

    def _mark_paid(
        self, acct: Account, inv: Obj, charge: str | None, out_of_band: bool = False, collected: bool = True
    ) -> None:
        now = self.now()
        inv["amount_paid"] = inv["amount_due"] if collected and not out_of_band else 0
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
        if collected and not out_of_band:
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
