"""Refunds of a charge or payment intent: full or partial, listed on the charge, `charge.refunded`; the 5126 test
card's refund starts `succeeded` and turns `failed` later with `charge.refund.updated` and the amount returned."""

from __future__ import annotations

import copy

from stripe_emulator import cards, money
from stripe_emulator.errors import StripeError, invalid, missing_param, state
from stripe_emulator.resources.balance import Balance
from stripe_emulator.resources.base import Obj, Params, check, merge_metadata
from stripe_emulator.store import Account, as_int, new_id, paginate

REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class Refunds(Balance):
    def refund_create(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {"amount", "charge", "metadata", "payment_intent", "reason", "refund_application_fee", "reverse_transfer"},
        )
        if params.get("charge") and params.get("payment_intent"):
            raise invalid("You may only specify one of these parameters: charge, payment_intent.")
        if params.get("charge"):
            charge = self.fetch(acct, params["charge"], "charge", "charge", "charge")
        elif params.get("payment_intent"):
            pi = self.fetch(acct, params["payment_intent"], "payment_intent", "payment_intent", "payment_intent")
            succeeded = [c for c in pi["charges"]["data"] if c["status"] == "succeeded"]
            if not succeeded:
                raise state(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            charge = succeeded[0]
        else:
            raise missing_param("charge")
        if charge["status"] != "succeeded":
            raise state(
                f"Charge {charge['id']} has not succeeded; it cannot be refunded.", code="charge_not_refundable"
            )
        if charge["disputed"]:
            raise state(
                f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise state(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = as_int(params["amount"], "amount") if params.get("amount") not in (None, "") else left
        if amount < 1:
            raise invalid("Invalid positive integer", param="amount")
        if amount > left:
            shown = money.display(amount, charge["currency"])
            raise invalid(
                f"Refund amount ({shown}) is greater than unrefunded amount on charge "
                f"({money.display(left, charge['currency'])})",
                param="amount",
            )
        if not money.three_decimal_ok(amount, charge["currency"]):
            raise invalid(
                f"Invalid amount {amount} for {charge['currency'].upper()}: refunds in three-decimal currencies "
                "must end in 0.",
                param="amount",
                code="invalid_charge_amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in REASONS:
            raise invalid(f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason")
        refund: Obj = {
            "id": new_id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": merge_metadata({}, params.get("metadata")),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        refund["balance_transaction"] = self._funds(acct, "refund", -amount, charge["currency"], refund["id"])["id"]
        acct.put(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, refund)
        charge["refunds"]["total_count"] = len(charge["refunds"]["data"])
        self.emit(acct, "charge.refunded", charge)
        card = cards.lookup(acct.objects[charge["payment_method"]]["_card"])
        if card is not None and card.after == "refund_fails":
            self._schedule_refund_failure(acct, refund["id"])
        return refund

    def _schedule_refund_failure(self, acct: Account, refund_id: str) -> None:
        def fail() -> None:
            with self.emu.lock:
                refund = acct.get(refund_id, "refund")
                if refund is None or refund["status"] != "succeeded":
                    return
                before = copy.deepcopy(refund)
                charge = acct.objects[refund["charge"]]
                refund["status"] = "failed"
                refund["failure_reason"] = "expired_or_canceled_card"
                returned = self._funds(acct, "refund_failure", refund["amount"], refund["currency"], refund["id"])
                refund["failure_balance_transaction"] = returned["id"]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
                self.emit_updated(acct, "charge.refund.updated", refund, before)

        self.emu.scheduler.after(self.emu.settings.refund_failure_delay, fail)

    def refund_retrieve(self, acct: Account, params: Params, rid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, rid, "refund", "refund")

    def refund_update(self, acct: Account, params: Params, rid: str) -> Obj:
        check(params, {"metadata"})
        refund = self.fetch(acct, rid, "refund", "refund")
        before = copy.deepcopy(refund)
        refund["metadata"] = merge_metadata(refund["metadata"], params.get("metadata"))
        self.emit_updated(acct, "charge.refund.updated", refund, before)
        return refund

    def refund_cancel(self, acct: Account, params: Params, rid: str) -> Obj:
        check(params, set())
        refund = self.fetch(acct, rid, "refund", "refund")
        raise StripeError(
            400,
            f"Only refunds with a status of requires_action can be canceled (this one is {refund['status']}).",
            code="resource_state_invalid",
        )

    def refund_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"charge", "created", "ending_before", "limit", "payment_intent", "starting_after"})
        charge, pi = params.get("charge"), params.get("payment_intent")
        return self.listing(
            acct,
            "refund",
            params,
            "/v1/refunds",
            lambda r: (charge is None or r["charge"] == charge) and (pi is None or r["payment_intent"] == pi),
        )

    def charge_refunds(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, {"ending_before", "limit", "starting_after"})
        self.fetch(acct, cid, "charge", "charge")
        return paginate(acct.all("refund", lambda r: r["charge"] == cid), params, f"/v1/charges/{cid}/refunds")
