"""Disputes: the 0259 test card's charge is disputed as fraudulent (funds withdrawn); evidence `winning_evidence` or
`losing_evidence` decides it as Stripe's test mode does; `close` accepts the loss."""

from __future__ import annotations

import copy

from stripe_emulator.errors import invalid, state
from stripe_emulator.resources.base import Obj, Params, check, merge_metadata
from stripe_emulator.resources.refunds import Refunds
from stripe_emulator.store import Account, as_bool, new_id

EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
OPEN = ("needs_response", "warning_needs_response")
EVIDENCE_WINDOW = 7 * 86400


class Disputes(Refunds):
    def _schedule_dispute(self, acct: Account, charge_id: str) -> None:
        def open_dispute() -> None:
            with self.emu.lock:
                charge = acct.get(charge_id, "charge")
                if charge is not None and not charge["disputed"]:
                    self._open_dispute(acct, charge)

        self.emu.scheduler.after(self.emu.settings.dispute_delay, open_dispute)

    def _open_dispute(self, acct: Account, charge: Obj) -> Obj:
        now = self.now()
        did = new_id("dp_")
        amount = charge["amount"] - charge["amount_refunded"]
        withdrawn = self._funds(
            acct, "dispute", -amount, charge["currency"], did, f"Chargeback withdrawal for {charge['id']}"
        )
        dispute: Obj = {
            "id": did,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [withdrawn],
            "charge": charge["id"],
            "created": now,
            "currency": charge["currency"],
            "evidence": {key: None for key in EVIDENCE_FIELDS},
            "evidence_details": {
                "due_by": now + EVIDENCE_WINDOW,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        acct.put(dispute)
        charge["disputed"] = True
        self.emit(acct, "charge.dispute.created", dispute)
        self.emit(acct, "charge.dispute.funds_withdrawn", dispute)
        return dispute

    def dispute_retrieve(self, acct: Account, params: Params, did: str) -> Obj:
        check(params, set())
        return self.fetch(acct, did, "dispute", "dispute")

    def dispute_update(self, acct: Account, params: Params, did: str) -> Obj:
        check(params, {"evidence", "metadata", "submit"})
        dispute = self.fetch(acct, did, "dispute", "dispute")
        before = copy.deepcopy(dispute)
        evidence = params.get("evidence")
        if evidence is not None:
            if dispute["status"] not in OPEN:
                raise state(
                    f"This dispute is {dispute['status']}; its evidence can no longer be changed.",
                    code="resource_state_invalid",
                    param="evidence",
                )
            if not isinstance(evidence, dict):
                raise invalid("Invalid evidence: must be an object", param="evidence")
            for key, value in evidence.items():
                if key not in EVIDENCE_FIELDS:
                    raise invalid(f"Received unknown parameter: evidence[{key}]", param=f"evidence[{key}]")
                dispute["evidence"][key] = value or None
            dispute["evidence_details"]["has_evidence"] = True
        dispute["metadata"] = merge_metadata(dispute["metadata"], params.get("metadata"))
        submit = as_bool(params.get("submit", True), "submit")
        if evidence is not None and submit:
            dispute["status"] = "under_review"
            dispute["evidence_details"]["submission_count"] += 1
            text = str(dispute["evidence"].get("uncategorized_text") or "")
            outcome = "won" if "winning_evidence" in text else "lost" if "losing_evidence" in text else None
            if outcome is not None:
                self._schedule_decision(acct, did, outcome)
        self.emit_updated(acct, "charge.dispute.updated", dispute, before)
        return dispute

    def _schedule_decision(self, acct: Account, did: str, outcome: str) -> None:
        def decide() -> None:
            with self.emu.lock:
                dispute = acct.get(did, "dispute")
                if dispute is not None and dispute["status"] == "under_review":
                    self._close(acct, dispute, outcome)

        self.emu.scheduler.after(self.emu.settings.dispute_delay, decide)

    def _close(self, acct: Account, dispute: Obj, outcome: str) -> None:
        dispute["status"] = outcome
        if outcome == "won":
            reinstated = self._funds(
                acct,
                "dispute_reversal",
                dispute["amount"],
                dispute["currency"],
                dispute["id"],
                f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"].append(reinstated)
            self.emit(acct, "charge.dispute.funds_reinstated", dispute)
        self.emit(acct, "charge.dispute.closed", dispute)

    def dispute_close(self, acct: Account, params: Params, did: str) -> Obj:
        check(params, set())
        dispute = self.fetch(acct, did, "dispute", "dispute")
        if dispute["status"] not in OPEN:
            raise state(f"This dispute is {dispute['status']} and cannot be closed.", code="resource_state_invalid")
        self._close(acct, dispute, "lost")
        return dispute

    def dispute_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"charge", "created", "ending_before", "limit", "payment_intent", "starting_after"})
        charge, pi = params.get("charge"), params.get("payment_intent")
        return self.listing(
            acct,
            "dispute",
            params,
            "/v1/disputes",
            lambda d: (charge is None or d["charge"] == charge) and (pi is None or d["payment_intent"] == pi),
        )
