"""Products and prices."""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation

from stripe_emulator.errors import StripeError, invalid, missing_param, state
from stripe_emulator.resources.base import (
    Obj,
    Params,
    check,
    currency_param,
    merge_metadata,
    text,
)
from stripe_emulator.resources.customers import Customers
from stripe_emulator.store import Account, as_bool, as_int, new_id


class Catalog(Customers):
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
