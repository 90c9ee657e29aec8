"""Invoice items: amounts from amount, unit amounts or prices, pending or on a draft."""

from __future__ import annotations

import copy
from decimal import Decimal

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
from stripe_emulator.resources.invoices import Invoices
from stripe_emulator.store import Account, as_bool, as_int, new_id


class InvoiceItems(Invoices):
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
                currency = currency or (inv["currency"] if inv else None)
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
