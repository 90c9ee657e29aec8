"""Pricing models against hand-computed amounts, tier semantics, late usage, and their properties."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.domain import money
from billing.domain.pricing import (
    BillingModel,
    Price,
    PriceType,
    Tier,
    TierMode,
    price_late_usage,
    price_quantity,
)

D = Decimal


def flat(currency: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {"type": "USAGE", "billing_model": "FLAT_FEE", "amount": amount, "currency": currency, **extra}


def fixed(currency: str, amount: str, cadence: str = "ADVANCE") -> dict[str, Any]:
    return {
        "type": "FIXED",
        "billing_model": "FLAT_FEE",
        "amount": amount,
        "currency": currency,
        "invoice_cadence": cadence,
    }


def package(currency: str, amount: str, divide_by: int, rounding: str) -> dict[str, Any]:
    return {
        "type": "USAGE",
        "billing_model": "PACKAGE",
        "amount": amount,
        "currency": currency,
        "transform_quantity": {"divide_by": divide_by, "round": rounding},
    }


def tiered(currency: str, mode: str, tiers: list[tuple[Any, str, str | None]]) -> dict[str, Any]:
    return {
        "type": "USAGE",
        "billing_model": "TIERED",
        "tier_mode": mode,
        "currency": currency,
        "tiers": [{"up_to": u, "unit_amount": a, "flat_amount": f} for u, a, f in tiers],
    }


USD_TIERS: list[tuple[int | None, str, str | None]] = [(100, "0.10", "5"), (1000, "0.08", "10"), (None, "0.05", None)]
JPY_TIERS: list[tuple[int | None, str, str | None]] = [(10, "100", None), (None, "75", "500")]
KWD_TIERS: list[tuple[int | None, str, str | None]] = [(10, "0.1255", None), (None, "0.100", "1.5")]

# (price record, quantity, expected line amount as the API would print it)
TABLE: list[tuple[str, dict[str, Any], str | None, str]] = [
    # FLAT_FEE
    ("flat usd half-up", flat("usd", "0.015"), "333", "5.00"),
    ("flat usd zero", flat("usd", "2.50"), "0", "0.00"),
    ("flat usd tiny unit", flat("usd", "0.0001"), "1000000000000", "100000000.00"),
    ("flat usd huge", flat("usd", "1.99"), "100000000000000000000", "199000000000000000000.00"),
    ("flat usd fractional qty", flat("usd", "0.20"), "2.5", "0.50"),
    ("flat jpy", flat("jpy", "3.5"), "3", "11"),
    ("flat kwd", flat("kwd", "0.0125"), "3", "0.038"),
    # FIXED (quantity 1 by default), both cadences
    ("fixed usd advance", fixed("usd", "49.99"), None, "49.99"),
    ("fixed usd arrear", fixed("usd", "49.99", "ARREAR"), None, "49.99"),
    ("fixed jpy x2", fixed("jpy", "5000"), "2", "10000"),
    ("fixed kwd", fixed("kwd", "12.345"), None, "12.345"),
    # PACKAGE: amount is the price of one package of divide_by units
    ("package up 0", package("usd", "5", 100, "up"), "0", "0.00"),
    ("package up 1", package("usd", "5", 100, "up"), "1", "5.00"),
    ("package up 100", package("usd", "5", 100, "up"), "100", "5.00"),
    ("package up 100.0001", package("usd", "5", 100, "up"), "100.0001", "10.00"),
    ("package up 101", package("usd", "5", 100, "up"), "101", "10.00"),
    ("package up 250", package("usd", "5", 100, "up"), "250", "15.00"),
    ("package down 99", package("usd", "5", 100, "down"), "99", "0.00"),
    ("package down 100", package("usd", "5", 100, "down"), "100", "5.00"),
    ("package down 250", package("usd", "5", 100, "down"), "250", "10.00"),
    ("package jpy up", package("jpy", "150", 1000, "up"), "1500.5", "300"),
    ("package kwd down", package("kwd", "0.125", 10, "down"), "35", "0.375"),
    ("package huge", package("usd", "0.01", 1, "up"), "123456789012345678901", "1234567890123456789.01"),
    # TIERED VOLUME: the whole quantity at its tier's unit price, plus that tier's flat amount
    ("volume usd 0", tiered("usd", "VOLUME", USD_TIERS), "0", "0.00"),
    ("volume usd 1", tiered("usd", "VOLUME", USD_TIERS), "1", "5.10"),
    ("volume usd at up_to", tiered("usd", "VOLUME", USD_TIERS), "100", "15.00"),
    ("volume usd 100.5", tiered("usd", "VOLUME", USD_TIERS), "100.5", "18.04"),
    ("volume usd 101", tiered("usd", "VOLUME", USD_TIERS), "101", "18.08"),
    ("volume usd at 2nd up_to", tiered("usd", "VOLUME", USD_TIERS), "1000", "90.00"),
    ("volume usd 1001", tiered("usd", "VOLUME", USD_TIERS), "1001", "50.05"),
    ("volume usd huge", tiered("usd", "VOLUME", USD_TIERS), "1000000000000000", "50000000000000.00"),
    ("volume jpy at up_to", tiered("jpy", "VOLUME", JPY_TIERS), "10", "1000"),
    ("volume jpy 11", tiered("jpy", "VOLUME", JPY_TIERS), "11", "1325"),
    ("volume jpy half yen", tiered("jpy", "VOLUME", [(3, "33.5", None), (None, "20.25", None)]), "3", "101"),
    ("volume jpy rounds", tiered("jpy", "VOLUME", [(3, "33.5", None), (None, "20.25", None)]), "5", "101"),
    ("volume kwd at up_to", tiered("kwd", "VOLUME", KWD_TIERS), "10", "1.255"),
    ("volume kwd 3", tiered("kwd", "VOLUME", KWD_TIERS), "3", "0.377"),
    ("volume kwd 11", tiered("kwd", "VOLUME", KWD_TIERS), "11", "2.600"),
    # TIERED SLAB: each slab at its own price, plus the flat amount of every tier reached
    ("slab usd 0", tiered("usd", "SLAB", USD_TIERS), "0", "0.00"),
    ("slab usd 1", tiered("usd", "SLAB", USD_TIERS), "1", "5.10"),
    ("slab usd at up_to", tiered("usd", "SLAB", USD_TIERS), "100", "15.00"),
    ("slab usd 100.5", tiered("usd", "SLAB", USD_TIERS), "100.5", "25.04"),
    ("slab usd at 2nd up_to", tiered("usd", "SLAB", USD_TIERS), "1000", "97.00"),
    ("slab usd 1001", tiered("usd", "SLAB", USD_TIERS), "1001", "97.05"),
    ("slab usd huge", tiered("usd", "SLAB", USD_TIERS), "1000000000000000", "50000000000047.00"),
    ("slab jpy at up_to", tiered("jpy", "SLAB", JPY_TIERS), "10", "1000"),
    ("slab jpy 11", tiered("jpy", "SLAB", JPY_TIERS), "11", "1575"),
    ("slab jpy 10.5", tiered("jpy", "SLAB", JPY_TIERS), "10.5", "1538"),
    ("slab kwd at up_to", tiered("kwd", "SLAB", KWD_TIERS), "10", "1.255"),
    ("slab kwd 11", tiered("kwd", "SLAB", KWD_TIERS), "11", "2.855"),
    ("slab kwd 3", tiered("kwd", "SLAB", KWD_TIERS), "3", "0.377"),
]


@pytest.mark.parametrize(("record", "quantity", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_hand_computed_table(record: dict[str, Any], quantity: str | None, expected: str) -> None:
    charge = price_quantity(record, None if quantity is None else D(quantity))
    assert money.format_money(charge.amount, record["currency"]) == expected
    assert charge.amount == D(expected)
    assert charge.amount.as_tuple().exponent == -money.exponent(record["currency"])  # rounded once, to the unit


class TestBreakdown:
    def test_slab_breakdown_for_an_invoice_line(self) -> None:
        charge = price_quantity(tiered("usd", "SLAB", USD_TIERS), D("1001"))
        assert [(t.tier, t.above, t.up_to, t.quantity, t.amount) for t in charge.breakdown] == [
            (1, 0, 100, D(100), D("15.00")),
            (2, 100, 1000, D(900), D("82.00")),
            (3, 1000, None, D(1), D("0.05")),
        ]
        assert charge.exact_amount == D("97.05")
        assert charge.unit_amount is None

    def test_volume_breakdown_is_the_one_tier(self) -> None:
        charge = price_quantity(tiered("usd", "VOLUME", USD_TIERS), D("100.5"))
        (only,) = charge.breakdown
        assert (only.tier, only.quantity, only.unit_amount, only.flat_amount) == (2, D("100.5"), D("0.08"), D(10))
        assert charge.unit_amount == D("0.08")

    def test_fractional_quantity_at_a_boundary_is_split_under_slab(self) -> None:
        charge = price_quantity(tiered("usd", "SLAB", USD_TIERS), D("100.5"))
        assert [t.quantity for t in charge.breakdown] == [D(100), D("0.5")]

    def test_exact_amount_is_kept_beside_the_rounded_one(self) -> None:
        charge = price_quantity(flat("usd", "0.015"), D(333))
        assert (charge.exact_amount, charge.amount) == (D("4.995"), D("5.00"))

    def test_package_reports_packages(self) -> None:
        charge = price_quantity(package("usd", "5", 100, "up"), D(250))
        assert (charge.quantity, charge.billable_quantity, charge.unit_amount) == (D(250), D(3), D(5))

    def test_usage_price_defaults_to_zero_quantity(self) -> None:
        assert price_quantity(flat("usd", "1")).amount == D("0.00")

    def test_accepts_a_price_object_and_int_quantities(self) -> None:
        price = Price.from_record(tiered("usd", "SLAB", USD_TIERS))
        assert price.tiers[0] == Tier(100, D("0.10"), D(5))
        assert price_quantity(price, 1001).amount == D("97.05")


class TestLateUsage:
    def test_slab_adjustment_is_the_difference_the_late_units_make(self) -> None:
        adjustment = price_late_usage(tiered("usd", "SLAB", USD_TIERS), D(90), D(20))
        # billed 90 → 9.00 + 5 = 14.00; 110 → 15.00 + 10 x 0.08 + 10 = 25.80
        assert (adjustment.before.amount, adjustment.after.amount, adjustment.amount) == (
            D("14.00"),
            D("25.80"),
            D("11.80"),
        )
        assert adjustment.total_quantity == D(110)

    def test_volume_adjustment_reprices_the_whole_quantity(self) -> None:
        adjustment = price_late_usage(tiered("usd", "VOLUME", USD_TIERS), D(90), D(20))
        assert adjustment.amount == D("18.80") - D("14.00")

    def test_volume_adjustment_can_be_a_credit(self) -> None:
        price = tiered("usd", "VOLUME", [(10, "2.00", None), (None, "1.00", None)])
        assert price_late_usage(price, D(10), D(1)).amount == D("-9.00")

    def test_each_side_is_rounded_as_a_line(self) -> None:
        # 1 unit at 0.005 was billed as 0.01; 2 units cost 0.01 too, so the late unit adds nothing.
        assert price_late_usage(flat("usd", "0.005"), D(1), D(1)).amount == D("0.00")
        assert price_late_usage(flat("usd", "0.005"), D(2), D(1)).amount == D("0.01")

    def test_package_late_units_inside_a_paid_package_cost_nothing(self) -> None:
        assert price_late_usage(package("usd", "5", 100, "up"), D(5), D(3)).amount == D("0.00")
        assert price_late_usage(package("usd", "5", 100, "up"), D(99), D(3)).amount == D("5.00")

    def test_kwd_and_jpy(self) -> None:
        assert price_late_usage(tiered("kwd", "SLAB", KWD_TIERS), D(3), D(8)).amount == D("2.855") - D("0.377")
        assert price_late_usage(tiered("jpy", "SLAB", JPY_TIERS), D(10), D("0.5")).amount == D(538)

    def test_negative_late_quantity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="late_quantity"):
            price_late_usage(flat("usd", "1"), D(1), D(-1))


class TestValidation:
    @pytest.mark.parametrize(
        ("record", "message"),
        [
            (flat("usd", "1") | {"amount": None}, "amount is required"),
            (flat("usd", "-1"), "negative"),
            (flat("usd", "1") | {"amount": 1.5}, "never a float"),
            (flat("usd", "abc"), "decimal string"),
            (flat("usd", "NaN"), "finite"),
            (flat("usd", "1") | {"currency": "usx"}, "unsupported currency"),
            (flat("usd", "1") | {"billing_model": "STAIRS"}, "billing_model"),
            (flat("usd", "1") | {"type": "ONE_OFF"}, "type"),
            (flat("usd", "1") | {"invoice_cadence": "ADVANCE"}, "ARREAR"),
            (flat("usd", "1") | {"billing_period_count": 0}, "at least 1"),
            (package("usd", "1", 0, "up"), "divide_by"),
            (package("usd", "1", 10, "sideways"), "round"),
            (package("usd", "1", 10, "up") | {"transform_quantity": None}, "transform_quantity"),
            (tiered("usd", "VOLUME", []), "tiers are required"),
            (tiered("usd", "VOLUME", USD_TIERS) | {"tier_mode": None}, "tier_mode"),
            (tiered("usd", "SLAB", [(10, "1", None), (20, "1", None)]), "last tier"),
            (tiered("usd", "SLAB", [(10, "1", None), (None, "1", None), (None, "1", None)]), "only the last"),
            (tiered("usd", "SLAB", [(10, "1", None), (10, "1", None), (None, "1", None)]), "ascend"),
            (tiered("usd", "SLAB", [(0, "1", None), (None, "1", None)]), "ascend"),
            (tiered("usd", "SLAB", [(10, "-1", None), (None, "1", None)]), "negative"),
            (tiered("usd", "SLAB", [(10, "1", "-2"), (None, "1", None)]), "negative"),
            (tiered("usd", "SLAB", [(D("10.5"), "1", None), (None, "1", None)]), "whole number"),
        ],
    )
    def test_bad_price_records(self, record: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            price_quantity(record, D(1))

    @pytest.mark.parametrize("quantity", [D(-1), D("-0.0001")])
    def test_negative_quantity(self, quantity: Decimal) -> None:
        with pytest.raises(ValueError, match="negative"):
            price_quantity(flat("usd", "1"), quantity)

    def test_float_quantity_is_refused(self) -> None:
        with pytest.raises(ValueError, match="float"):
            price_quantity(flat("usd", "1"), 1.5)  # type: ignore[arg-type]

    def test_enum_values_are_case_insensitive_and_currency_lower_cased(self) -> None:
        price = Price.from_record(package("USD", "1", 10, "UP") | {"billing_model": "package", "type": "usage"})
        assert (price.currency, price.billing_model, price.type) == ("usd", BillingModel.PACKAGE, PriceType.USAGE)


# -- properties ---------------------------------------------------------------------------------

CURRENCIES = ["usd", "jpy", "kwd", "eur", "bhd", "krw", "clf"]
money_amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw: st.DrawFn, max_tiers: int = 5) -> list[Tier]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), max_size=max_tiers - 1)))
    ups: list[int | None] = [*bounds, None]
    return [Tier(u, draw(money_amounts), draw(st.none() | money_amounts)) for u in ups]


@st.composite
def prices(draw: st.DrawFn) -> Price:
    currency = draw(st.sampled_from(CURRENCIES))
    model = draw(st.sampled_from(list(BillingModel)))
    if model is BillingModel.TIERED:
        mode = draw(st.sampled_from(list(TierMode)))
        return Price(currency, PriceType.USAGE, model, tier_mode=mode, tiers=tuple(draw(tier_lists())))
    record = (
        flat(currency, str(draw(money_amounts)))
        if model is BillingModel.FLAT_FEE
        else package(
            currency, str(draw(money_amounts)), draw(st.integers(1, 1000)), draw(st.sampled_from(["up", "down"]))
        )
    )
    return Price.from_record(record)


@given(st.sampled_from(CURRENCIES), tier_lists(), quantities, quantities)
def test_slab_is_monotone_non_decreasing(currency: str, tiers: list[Tier], a: Decimal, b: Decimal) -> None:
    price = Price(currency, PriceType.USAGE, BillingModel.TIERED, tier_mode=TierMode.SLAB, tiers=tuple(tiers))
    low, high = sorted((a, b))
    assert price_quantity(price, low).exact_amount <= price_quantity(price, high).exact_amount
    assert price_quantity(price, low).amount <= price_quantity(price, high).amount


@given(st.sampled_from(CURRENCIES), money_amounts, st.none() | money_amounts, quantities)
def test_volume_and_slab_agree_on_a_single_tier(
    currency: str, unit: Decimal, flat_amount: Decimal | None, quantity: Decimal
) -> None:
    tiers = (Tier(None, unit, flat_amount),)
    volume = Price(currency, PriceType.USAGE, BillingModel.TIERED, tier_mode=TierMode.VOLUME, tiers=tiers)
    slab = Price(currency, PriceType.USAGE, BillingModel.TIERED, tier_mode=TierMode.SLAB, tiers=tiers)
    assert price_quantity(volume, quantity).amount == price_quantity(slab, quantity).amount


@given(prices(), quantities, quantities)
def test_late_usage_adjustments_add_up(price: Price, billed: Decimal, late: Decimal) -> None:
    adjustment = price_late_usage(price, billed, late)
    assert price_quantity(price, billed).amount + adjustment.amount == price_quantity(price, billed + late).amount
    assert adjustment.amount.as_tuple().exponent == -money.exponent(price.currency)


@given(prices(), quantities, st.lists(quantities, min_size=1, max_size=4))
def test_successive_late_batches_add_up(price: Price, billed: Decimal, batches: list[Decimal]) -> None:
    total = price_quantity(price, billed).amount
    running = billed
    for batch in batches:
        total += price_late_usage(price, running, batch).amount
        running += batch
    assert total == price_quantity(price, running).amount


@given(st.sampled_from(CURRENCIES), tier_lists(), quantities)
def test_slab_breakdown_covers_the_quantity(currency: str, tiers: list[Tier], quantity: Decimal) -> None:
    price = Price(currency, PriceType.USAGE, BillingModel.TIERED, tier_mode=TierMode.SLAB, tiers=tuple(tiers))
    charge = price_quantity(price, quantity)
    assert sum((t.quantity for t in charge.breakdown), D(0)) == quantity
    assert all(t.quantity > 0 for t in charge.breakdown)
    assert charge.exact_amount == sum((t.amount for t in charge.breakdown), D(0))
    assert charge.amount == money.round_minor(charge.exact_amount, currency)


@given(st.sampled_from(CURRENCIES), tier_lists(), quantities)
def test_volume_charges_one_tier_holding_the_quantity(currency: str, tiers: list[Tier], quantity: Decimal) -> None:
    assume(quantity > 0)
    price = Price(currency, PriceType.USAGE, BillingModel.TIERED, tier_mode=TierMode.VOLUME, tiers=tuple(tiers))
    (tier,) = price_quantity(price, quantity).breakdown
    assert tier.above < quantity and (tier.up_to is None or quantity <= tier.up_to)
    assert tier.amount == quantity * tier.unit_amount + tier.flat_amount


@given(st.sampled_from(CURRENCIES), money_amounts, st.integers(1, 1000), quantities)
def test_package_up_and_down_differ_by_at_most_one_package(
    currency: str, amount: Decimal, divide_by: int, quantity: Decimal
) -> None:
    up = price_quantity(package(currency, str(amount), divide_by, "up"), quantity)
    down = price_quantity(package(currency, str(amount), divide_by, "down"), quantity)
    assert up.billable_quantity - down.billable_quantity in (0, 1)
    assert down.billable_quantity * divide_by <= quantity <= up.billable_quantity * divide_by
    assert (up.billable_quantity == down.billable_quantity) == (quantity % divide_by == 0)


@given(st.sampled_from(CURRENCIES), money_amounts, quantities)
def test_flat_fee_is_the_rounded_product(currency: str, amount: Decimal, quantity: Decimal) -> None:
    charge = price_quantity(flat(currency, str(amount)), quantity)
    assert charge.exact_amount == quantity * amount
    assert charge.amount == money.round_minor(quantity * amount, currency)
