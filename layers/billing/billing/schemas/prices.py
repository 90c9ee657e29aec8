"""HTTP schemas of prices (Flexprice ``CreatePriceRequest``, ``PriceResponse``, ``types.PriceFilter``).

Field-level rules (types, enums, ranges) are pydantic's; the rules that tie fields together (a USAGE price
needs a meter, a TIERED price needs tiers, ...) are ``PriceFields.problems()``, run by the services so that a
price sent inline in a plan is reported as ``prices.<n>.<field>``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, field_validator

from billing.errors import ValidationFailed
from billing.schemas.common import (  # noqa: F401  (canonical, MAX_MONEY: part of this module's interface)
    MAX_MONEY,
    CsvList,
    Edge,
    ListFilter,
    Metadata,
    Money,
    Timestamp,
    canonical,
    money,
)

PriceType = Literal["USAGE", "FIXED"]
BillingModel = Literal["FLAT_FEE", "PACKAGE", "TIERED"]
TierMode = Literal["VOLUME", "SLAB"]
BillingPeriod = Literal["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "HALF_YEARLY", "ANNUAL"]
BillingCadence = Literal["RECURRING"]
InvoiceCadence = Literal["ARREAR", "ADVANCE"]
PriceUnitType = Literal["FIAT"]
RoundType = Literal["up", "down"]
EntityType = Literal["PLAN", "SUBSCRIPTION", "ADDON", "PRICE", "COSTSHEET"]

MAX_TIERS = 100
MAX_FILTER_IDS = 100
MAX_QUANTITY = 10**18
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")

Quantity = Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY)]


def _blank_is_none(value: Any) -> Any:
    """Go clients send ``""`` for an absent optional string; read it as absent."""
    return None if isinstance(value, str) and not value.strip() else value


class TierIn(Edge):
    """Flexprice ``CreatePriceTier``: ``up_to`` is inclusive; the last tier has ``up_to: null``."""

    up_to: Quantity | None = None
    unit_amount: Money
    flat_amount: Money | None = None

    @field_validator("flat_amount", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)


class TransformQuantityIn(Edge):
    """Flexprice ``price.TransformQuantity``: usage is divided by ``divide_by`` and rounded."""

    divide_by: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]
    round: RoundType = "up"

    @field_validator("round", mode="before")
    @classmethod
    def _default_round(cls, value: Any) -> Any:
        return "up" if value is None or value == "" else value


class PriceFields(Edge):
    """``CreatePriceRequest`` without the entity it belongs to: the shape of a plan's inline price."""

    type: PriceType
    billing_model: BillingModel
    billing_period: BillingPeriod
    billing_period_count: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    billing_cadence: BillingCadence = "RECURRING"
    invoice_cadence: InvoiceCadence
    currency: str
    amount: Money | None = None
    meter_id: str | None = Field(default=None, max_length=100)
    tier_mode: TierMode | None = None
    tiers: list[TierIn] | None = Field(default=None, max_length=MAX_TIERS)
    transform_quantity: TransformQuantityIn | None = None
    price_unit_type: PriceUnitType = "FIAT"
    lookup_key: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    display_name: str | None = Field(default=None, max_length=255)
    metadata: Metadata | None = None

    @field_validator("amount", "meter_id", "tier_mode", "lookup_key", "description", "display_name", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @field_validator("billing_period_count", "billing_cadence", "price_unit_type", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be a 3-letter ISO 4217 currency code such as usd")
        return value.lower()

    def problems(self) -> list[tuple[str, str]]:
        """The rules that tie fields together, as ``(field, message)`` pairs."""
        found: list[tuple[str, str]] = []
        if self.type == "USAGE":
            if not self.meter_id:
                found.append(("meter_id", "is required when type is USAGE"))
            if self.invoice_cadence != "ARREAR":
                found.append(("invoice_cadence", "must be ARREAR when type is USAGE"))
        elif self.meter_id:
            found.append(("meter_id", "must not be set when type is FIXED"))
        if self.billing_model in ("FLAT_FEE", "PACKAGE") and self.amount is None:
            found.append(("amount", f"is required when billing_model is {self.billing_model}"))
        if self.billing_model == "PACKAGE":
            if self.transform_quantity is None:
                found.append(("transform_quantity", "is required when billing_model is PACKAGE"))
        elif self.transform_quantity is not None:
            found.append(("transform_quantity", "is only allowed when billing_model is PACKAGE"))
        if self.billing_model == "TIERED":
            found.extend(self._tier_problems())
        elif self.tiers:
            found.append(("tiers", "are only allowed when billing_model is TIERED"))
        return found

    def _tier_problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if self.tier_mode is None:
            found.append(("tier_mode", "is required when billing_model is TIERED (VOLUME or SLAB)"))
        if self.amount is not None and self.amount != 0:
            found.append(("amount", "must not be set when billing_model is TIERED; tiers carry the amounts"))
        tiers = self.tiers or []
        if not tiers:
            found.append(("tiers", "at least one tier is required when billing_model is TIERED"))
            return found
        previous: int | None = None
        for position, tier in enumerate(tiers):
            last = position == len(tiers) - 1
            field = f"tiers.{position}.up_to"
            if last:
                if tier.up_to is not None:
                    found.append((field, "must be null on the last tier (the open-ended tier)"))
            elif tier.up_to is None:
                found.append((field, "only the last tier may have up_to null"))
            elif previous is not None and tier.up_to <= previous:
                found.append((field, f"must be greater than the previous tier's up_to ({previous})"))
            if tier.up_to is not None:
                previous = tier.up_to
        return found

    def check(self, prefix: tuple[str | int, ...] = ()) -> None:
        problems = self.problems()
        if problems:
            raise rejected(problems, prefix)


class PriceCreate(PriceFields):
    """Flexprice ``CreatePriceRequest``."""

    entity_type: Literal["PLAN"]
    entity_id: str = Field(min_length=1, max_length=100)


class PriceDelete(Edge):
    """Flexprice ``DeletePriceRequest``: the body of ``DELETE /prices/{id}`` is optional here."""

    end_date: Timestamp | None = None


class PriceFilter(ListFilter):
    """Flexprice ``types.PriceFilter`` (body of ``POST /prices/search``, query of ``GET /prices``)."""

    plan_id: str | None = None
    plan_ids: CsvList | None = Field(default=None, max_length=MAX_FILTER_IDS)
    entity_ids: CsvList | None = Field(default=None, max_length=MAX_FILTER_IDS)
    entity_type: EntityType | None = None
    price_ids: CsvList | None = Field(default=None, max_length=MAX_FILTER_IDS)
    meter_ids: CsvList | None = Field(default=None, max_length=MAX_FILTER_IDS)
    billing_periods: CsvList | None = None
    expand: str | None = None

    def plan_scope(self) -> list[str] | None:
        """The plans the search is restricted to (one index query each), or None when it is not restricted.

        ``plan_id``, ``plan_ids`` and ``entity_ids`` (a plan price's entity is its plan) narrow each other.
        """
        given = [set(r) for r in ([self.plan_id] if self.plan_id else [], self.plan_ids, self.entity_ids) if r]
        if not given:
            return None
        return sorted(set.intersection(*given))

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.entity_type and record.get("entity_type") != self.entity_type:
            return False
        if self.price_ids and record["id"] not in self.price_ids:
            return False
        if self.meter_ids and record.get("meter_id") not in self.meter_ids:
            return False
        return not (self.billing_periods and record.get("billing_period") not in self.billing_periods)


def rejected(problems: list[tuple[str, str]], prefix: tuple[str | int, ...] = ()) -> ValidationFailed:
    """A 400 ``validation_error`` naming every offending field, shaped like the edge's pydantic errors."""
    errors = [{"field": ".".join(str(p) for p in (*prefix, field)), "message": msg} for field, msg in problems]
    first = errors[0]
    return ValidationFailed(f"invalid request: {first['field']}: {first['message']}", {"errors": errors})


# -- responses -----------------------------------------------------------------------------------------------

_SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "inr": "₹",
    "sgd": "S$",
    "hkd": "HK$",
    "nzd": "NZ$",
    "brl": "R$",
    "mxn": "MX$",
    "krw": "₩",
    "cny": "CN¥",
    "ils": "₪",
    "php": "₱",
    "thb": "฿",
    "vnd": "₫",
    "rub": "₽",
}

# Currencies whose minor unit is not the cent (ISO 4217 exponent 0 or 3).
_EXPONENTS = {
    **dict.fromkeys(
        ("bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"),
        0,
    ),
    **dict.fromkeys(("xaf", "xof", "xpf"), 0),
    **dict.fromkeys(("bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"), 3),
}


def currency_symbol(currency: str) -> str:
    """Flexprice's display symbol: ``$`` for usd, the upper-case code where it knows no symbol."""
    return _SYMBOLS.get(currency.lower(), currency.upper())


def amount_text(value: Decimal | None, currency: str) -> str | None:
    """Money as a decimal string with at least the currency's minor-unit digits (``12.5`` usd → ``"12.50"``).

    Amounts are stored in one canonical form, so a price reads back with the same strings it was created with
    (``"12.50"``, ``"0.0025"``) whatever the store does with trailing zeros.
    """
    if value is None:
        return None
    digits = _EXPONENTS.get(currency.lower(), 2)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < digits:
        value = value.quantize(Decimal(1).scaleb(-digits))
    return money(value)


def tier_out(tier: dict[str, Any], currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "up_to": tier.get("up_to"),
        "unit_amount": amount_text(tier["unit_amount"], currency),
    }
    if tier.get("flat_amount") is not None:
        out["flat_amount"] = amount_text(tier["flat_amount"], currency)
    return out


def price_out(record: dict[str, Any]) -> dict[str, Any]:
    """Flexprice ``PriceResponse`` from a stored price record (see ``billing.services.prices``)."""
    currency = record["currency"]
    amount = amount_text(record.get("amount") or Decimal(0), currency) or "0"
    out: dict[str, Any] = {
        "id": record["id"],
        "tenant_id": record["tenant_id"],
        "environment_id": record["environment_id"],
        "entity_type": record["entity_type"],
        "entity_id": record["entity_id"],
        "type": record["type"],
        "billing_model": record["billing_model"],
        "amount": amount,
        "display_amount": f"{currency_symbol(currency)}{amount}",
        "currency": currency,
        "price_unit_type": record["price_unit_type"],
        "billing_period": record["billing_period"],
        "billing_period_count": record["billing_period_count"],
        "billing_cadence": record["billing_cadence"],
        "invoice_cadence": record["invoice_cadence"],
        "meter_id": record.get("meter_id"),
        "transform_quantity": record.get("transform_quantity"),
        "lookup_key": record.get("lookup_key"),
        "description": record.get("description"),
        "display_name": record.get("display_name"),
        "metadata": record.get("metadata") or {},
        "status": record["status"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "created_by": record.get("created_by"),
        "updated_by": record.get("updated_by"),
    }
    if record.get("billing_model") == "TIERED":
        out["tier_mode"] = record.get("tier_mode")
        out["tiers"] = [tier_out(t, currency) for t in record.get("tiers") or []]
    return out
