"""Pricing of one price record for a quantity: FLAT_FEE, PACKAGE and TIERED (VOLUME, SLAB).

Price records use Flexprice's field names (``type``, ``billing_model``, ``tier_mode``, ``tiers`` with
``up_to`` / ``unit_amount`` / ``flat_amount``, ``amount``, ``currency``, ``transform_quantity`` with
``divide_by`` / ``round``, ...). ``Price.from_record`` reads such a mapping (money as Decimal, str or int)
and validates it.

Semantics
    FLAT_FEE   quantity x amount (a FIXED price is priced for quantity 1 unless told otherwise).
    PACKAGE    packages x amount, where packages = quantity / divide_by rounded up or down to a whole
               number (``amount`` is the price of one package).
    VOLUME     the whole quantity at the unit price of the tier it falls in, plus that tier's flat_amount.
    SLAB       each slab's units at that slab's unit price, plus the flat_amount of every tier reached.

Tier boundaries are inclusive and continuous: tier ``i`` holds quantities in ``(up_to[i-1], up_to[i]]``
(the first tier starts above 0, the last has ``up_to`` None). With ``up_to`` 10, a quantity of exactly
10 is in tier 1 and 10.5 is in tier 2: under VOLUME all 10.5 units take tier 2's price; under SLAB tier
1 takes 10 units and tier 2 takes 0.5. A tier is "reached" when it holds a positive quantity, so a
quantity of 0 reaches no tier and costs 0 under both modes (no flat_amount is charged for no usage).

Arithmetic is exact Decimal throughout (an operation that would need rounding raises rather than
losing digits); the line amount is rounded once, with ``money.round_minor`` (half up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Any

from billing.domain import money

ZERO = Decimal(0)


class PriceType(StrEnum):
    USAGE = "USAGE"
    FIXED = "FIXED"


class BillingModel(StrEnum):
    FLAT_FEE = "FLAT_FEE"
    PACKAGE = "PACKAGE"
    TIERED = "TIERED"


class TierMode(StrEnum):
    VOLUME = "VOLUME"
    SLAB = "SLAB"


class InvoiceCadence(StrEnum):
    ARREAR = "ARREAR"
    ADVANCE = "ADVANCE"


class PackageRound(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None
    unit_amount: Decimal
    flat_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TransformQuantity:
    divide_by: int
    round: PackageRound = PackageRound.UP


@dataclass(frozen=True, slots=True)
class Price:
    """A validated price record (only the fields pricing and invoicing read)."""

    currency: str
    type: PriceType
    billing_model: BillingModel
    amount: Decimal | None = None
    tier_mode: TierMode | None = None
    tiers: tuple[Tier, ...] = ()
    transform_quantity: TransformQuantity | None = None
    invoice_cadence: InvoiceCadence = InvoiceCadence.ARREAR
    billing_period: str | None = None
    billing_period_count: int = 1
    meter_id: str | None = None
    id: str | None = None
    display_name: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Price:
        """Read a stored or requested price record; ValueError names the first bad field."""
        billing_model = _enum(BillingModel, record.get("billing_model"), "billing_model")
        tiers_raw = record.get("tiers") or ()
        if not isinstance(tiers_raw, Sequence) or isinstance(tiers_raw, str | bytes):
            raise ValueError("tiers must be a list")
        tiers = tuple(_tier(raw, i) for i, raw in enumerate(tiers_raw))
        transform_raw = record.get("transform_quantity")
        transform = _transform(transform_raw) if transform_raw else None
        tier_mode_raw = record.get("tier_mode")
        count_raw = record.get("billing_period_count", 1)
        count = 1 if count_raw is None else _int(count_raw, "billing_period_count")
        cadence_raw = record.get("invoice_cadence") or InvoiceCadence.ARREAR
        return cls(
            currency=money.normalize_currency(str(record.get("currency") or "")),
            type=_enum(PriceType, record.get("type"), "type"),
            billing_model=billing_model,
            amount=_decimal_or_none(record.get("amount"), "amount"),
            tier_mode=_enum(TierMode, tier_mode_raw, "tier_mode") if tier_mode_raw else None,
            tiers=tiers,
            transform_quantity=transform,
            invoice_cadence=_enum(InvoiceCadence, cadence_raw, "invoice_cadence"),
            billing_period=str(record["billing_period"]) if record.get("billing_period") else None,
            billing_period_count=count,
            meter_id=str(record["meter_id"]) if record.get("meter_id") else None,
            id=str(record["id"]) if record.get("id") else None,
            display_name=str(record["display_name"]) if record.get("display_name") else None,
        )


def as_price(price: Price | Mapping[str, Any]) -> Price:
    return price if isinstance(price, Price) else Price.from_record(price)


# -- record parsing -----------------------------------------------------------------------------


def _enum[E: StrEnum](kind: type[E], value: Any, name: str) -> E:
    text = str(value or "").strip()
    for member in kind:
        if text.upper() == member.value.upper():
            return member
    allowed = ", ".join(m.value for m in kind)
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a decimal")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f'{name} must be a decimal string such as "12.50", got {value!r}') from None
    else:
        raise ValueError(f"{name} must be a decimal (never a float), got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{name} must be finite")
    return result


def _decimal_or_none(value: Any, name: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _decimal(value, name)


def _int(value: Any, name: str) -> int:
    number = _decimal(value, name)
    if number != number.to_integral_value():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _tier(raw: Any, index: int) -> Tier:
    if isinstance(raw, Tier):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"tiers[{index}] must be an object")
    up_to = raw.get("up_to")
    return Tier(
        up_to=None if up_to is None else _int(up_to, f"tiers[{index}].up_to"),
        unit_amount=_decimal(raw.get("unit_amount"), f"tiers[{index}].unit_amount"),
        flat_amount=_decimal_or_none(raw.get("flat_amount"), f"tiers[{index}].flat_amount"),
    )


def _transform(raw: Any) -> TransformQuantity:
    if isinstance(raw, TransformQuantity):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError("transform_quantity must be an object")
    rounding = raw.get("round") or PackageRound.UP
    return TransformQuantity(
        divide_by=_int(raw.get("divide_by"), "transform_quantity.divide_by"),
        round=_enum(PackageRound, rounding, "transform_quantity.round"),
    )


def _validate(price: Price) -> None:
    money.exponent(price.currency)
    if price.billing_period_count < 1:
        raise ValueError("billing_period_count must be at least 1")
    if price.type is PriceType.USAGE and price.invoice_cadence is not InvoiceCadence.ARREAR:
        raise ValueError("a USAGE price is invoiced in ARREAR")
    if price.billing_model in (BillingModel.FLAT_FEE, BillingModel.PACKAGE):
        if price.amount is None:
            raise ValueError(f"amount is required for {price.billing_model.value}")
        if price.amount < 0:
            raise ValueError("amount must not be negative")
    if price.billing_model is BillingModel.PACKAGE:
        if price.transform_quantity is None:
            raise ValueError("transform_quantity is required for PACKAGE")
        if price.transform_quantity.divide_by < 1:
            raise ValueError("transform_quantity.divide_by must be at least 1")
    if price.billing_model is BillingModel.TIERED:
        if price.tier_mode is None:
            raise ValueError("tier_mode is required for TIERED (VOLUME or SLAB)")
        _validate_tiers(price.tiers)


def _validate_tiers(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise ValueError("tiers are required for TIERED")
    previous = 0
    for i, tier in enumerate(tiers):
        last = i == len(tiers) - 1
        if tier.unit_amount < 0 or (tier.flat_amount is not None and tier.flat_amount < 0):
            raise ValueError(f"tiers[{i}] amounts must not be negative")
        if last:
            if tier.up_to is not None:
                raise ValueError("the last tier must have up_to null (unbounded)")
        else:
            if tier.up_to is None:
                raise ValueError(f"only the last tier may have up_to null (tiers[{i}])")
            if tier.up_to <= previous:
                raise ValueError(f"tiers[{i}].up_to must be greater than {previous} (up_to values ascend)")
            previous = tier.up_to


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierCharge:
    """What one tier contributed: ``quantity`` units in ``(above, up_to]`` at ``unit_amount``."""

    tier: int  # 1-based, as shown on an invoice
    above: int
    up_to: int | None
    quantity: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal  # exact, unrounded: quantity x unit_amount + flat_amount


@dataclass(frozen=True, slots=True)
class Charge:
    """The priced line: ``amount`` is rounded to the currency's minor unit, the rest is exact."""

    currency: str
    quantity: Decimal
    billable_quantity: Decimal  # packages for PACKAGE, else the quantity
    unit_amount: Decimal | None  # the single unit (or package) price, when there is one
    amount: Decimal
    exact_amount: Decimal
    breakdown: tuple[TierCharge, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class LateUsageCharge:
    """The adjustment for units that arrived after their period was invoiced.

    ``amount = after.amount - before.amount``: both are rounded as invoice lines are, so what was
    billed plus the adjustment equals what one line for the full quantity would have been. Under
    VOLUME pricing late units can move the whole quantity into a cheaper tier, so the amount can be
    negative (a credit).
    """

    currency: str
    billed_quantity: Decimal
    late_quantity: Decimal
    amount: Decimal
    before: Charge
    after: Charge

    @property
    def total_quantity(self) -> Decimal:
        return self.after.quantity


# -- pricing ------------------------------------------------------------------------------------


def _quantity(value: Decimal | int, name: str = "quantity") -> Decimal:
    quantity = _decimal(value, name)
    if quantity < 0:
        raise ValueError(f"{name} must not be negative")
    return quantity


def price_quantity(price: Price | Mapping[str, Any], quantity: Decimal | int | None = None) -> Charge:
    """Price ``quantity`` units (a FIXED price defaults to quantity 1, a USAGE price to 0)."""
    price = as_price(price)
    if quantity is None:
        quantity = Decimal(1) if price.type is PriceType.FIXED else ZERO
    qty = _quantity(quantity)
    breakdown: tuple[TierCharge, ...] = ()
    unit: Decimal | None
    with localcontext(money.EXACT_CONTEXT):
        match price.billing_model:
            case BillingModel.FLAT_FEE:
                assert price.amount is not None
                billable, unit = qty, price.amount
                exact = qty * price.amount
            case BillingModel.PACKAGE:
                assert price.amount is not None and price.transform_quantity is not None
                billable, unit = _packages(qty, price.transform_quantity), price.amount
                exact = billable * price.amount
            case BillingModel.TIERED:
                tiered = _volume if price.tier_mode is TierMode.VOLUME else _slab
                breakdown = tiered(qty, price.tiers)
                billable = qty
                unit = breakdown[0].unit_amount if len(breakdown) == 1 else None
                exact = sum((t.amount for t in breakdown), ZERO)
    return Charge(
        currency=price.currency,
        quantity=qty,
        billable_quantity=billable,
        unit_amount=unit,
        amount=money.round_minor(exact, price.currency),
        exact_amount=exact,
        breakdown=breakdown,
    )


def _packages(quantity: Decimal, transform: TransformQuantity) -> Decimal:
    whole, remainder = divmod(quantity, Decimal(transform.divide_by))
    if remainder and transform.round is PackageRound.UP:
        return whole + 1
    return whole


def _bounds(tiers: tuple[Tier, ...]) -> list[tuple[int, int | None, Tier]]:
    result: list[tuple[int, int | None, Tier]] = []
    above = 0
    for tier in tiers:
        result.append((above, tier.up_to, tier))
        above = tier.up_to if tier.up_to is not None else above
    return result


def _volume(quantity: Decimal, tiers: tuple[Tier, ...]) -> tuple[TierCharge, ...]:
    if quantity == 0:
        return ()
    for number, (above, up_to, tier) in enumerate(_bounds(tiers), start=1):
        if up_to is None or quantity <= up_to:
            flat = tier.flat_amount or ZERO
            amount = quantity * tier.unit_amount + flat
            return (TierCharge(number, above, up_to, quantity, tier.unit_amount, flat, amount),)
    raise AssertionError("the last tier is unbounded")  # guaranteed by _validate_tiers


def _slab(quantity: Decimal, tiers: tuple[Tier, ...]) -> tuple[TierCharge, ...]:
    charges: list[TierCharge] = []
    for number, (above, up_to, tier) in enumerate(_bounds(tiers), start=1):
        if quantity <= above:
            break
        units = quantity - above if up_to is None else min(quantity, Decimal(up_to)) - above
        flat = tier.flat_amount or ZERO
        charges.append(TierCharge(number, above, up_to, units, tier.unit_amount, flat, units * tier.unit_amount + flat))
    return tuple(charges)


def price_late_usage(
    price: Price | Mapping[str, Any], already_billed_quantity: Decimal | int, late_quantity: Decimal | int
) -> LateUsageCharge:
    """price(billed + late) - price(billed), each rounded as an invoice line is."""
    price = as_price(price)
    billed = _quantity(already_billed_quantity, "already_billed_quantity")
    late = _quantity(late_quantity, "late_quantity")
    with localcontext(money.EXACT_CONTEXT):
        total = billed + late
    before = price_quantity(price, billed)
    after = price_quantity(price, total)
    with localcontext(money.EXACT_CONTEXT):
        amount = after.amount - before.amount
    return LateUsageCharge(price.currency, billed, late, amount, before, after)
