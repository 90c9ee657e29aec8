"""Customers: create, update, delete, list, search, their payment methods."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from stripe_emulator.errors import invalid, no_such
from stripe_emulator.resources.base import (
    Obj,
    Params,
    address,
    check,
    currency_param,
    merge_metadata,
    text,
)
from stripe_emulator.resources.payment_methods import PaymentMethods
from stripe_emulator.store import Account, as_int, new_id, paginate


class Customers(PaymentMethods):
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
            change = as_int(params["balance"], "balance") - cus["balance"]
            if change:
                kind = "initial" if creating else "adjustment"
                self._balance_transaction(acct, cus, change, kind, cus["currency"] or "usd", set_currency=False)
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

    # ------------------------------------------------------------------ customer balance

    def _applicable_balance(self, acct: Account, inv: Obj) -> int:
        """The customer's balance applies to invoices in the balance's currency (the customer's currency)."""
        cus = acct.objects[inv["customer"]]
        if cus.get("deleted") or cus["currency"] not in (None, inv["currency"]):
            return 0
        return int(cus["balance"])

    def _balance_transaction(
        self,
        acct: Account,
        cus: Obj,
        amount: int,
        kind: str,
        currency: str,
        invoice: str | None = None,
        *,
        description: str | None = None,
        metadata: Any = None,
        set_currency: bool = True,
    ) -> Obj:
        """One entry of the customer's balance ledger; the balance is the sum of its entries."""
        cus["balance"] += amount
        if set_currency and cus["currency"] is None:
            cus["currency"] = currency
        txn: Obj = {
            "id": new_id("cbtxn_"),
            "object": "customer_balance_transaction",
            "amount": amount,
            "created": self.now(),
            "credit_note": None,
            "currency": currency,
            "customer": cus["id"],
            "description": description,
            "ending_balance": cus["balance"],
            "invoice": invoice,
            "livemode": False,
            "metadata": merge_metadata({}, metadata),
            "type": kind,
        }
        return acct.put(txn)

    def balance_transaction_create(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, {"amount", "currency", "description", "metadata"}, ("amount", "currency"))
        cus = self.fetch(acct, cid, "customer", "customer")
        currency = currency_param(params)
        assert currency is not None
        if cus["currency"] not in (None, currency):
            raise invalid(
                f"The currency of the balance transaction ({currency}) must match the customer's ({cus['currency']}).",
                param="currency",
            )
        before = copy.deepcopy(cus)
        txn = self._balance_transaction(
            acct,
            cus,
            as_int(params["amount"], "amount"),
            "adjustment",
            currency,
            description=text(params, "description"),
            metadata=params.get("metadata"),
        )
        self.emit_updated(acct, "customer.updated", cus, before)
        return txn

    def balance_transaction_list(self, acct: Account, params: Params, cid: str) -> Obj:
        check(params, {"ending_before", "limit", "starting_after"})
        self.fetch(acct, cid, "customer", "customer")
        return paginate(
            acct.all("customer_balance_transaction", lambda t: t["customer"] == cid),
            params,
            f"/v1/customers/{cid}/balance_transactions",
        )

    def balance_transaction_retrieve(self, acct: Account, params: Params, cid: str, tid: str) -> Obj:
        check(params, set())
        self.fetch(acct, cid, "customer", "customer")
        txn = acct.get(tid, "customer_balance_transaction")
        if txn is None or txn["customer"] != cid:
            raise no_such("customer balance transaction", tid)
        return txn
