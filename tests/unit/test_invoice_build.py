"""Building an invoice's lines from a period, its prices, its usage and late usage (pure data)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import money
from billing.domain.invoice import LateUsage, build_invoice
from billing.domain.periods import Schedule

D = Decimal
SCHEDULE = Schedule.of(datetime(2025, 1, 31, tzinfo=UTC), "MONTHLY")
JAN, FEB, MAR = SCHEDULE.at_index(0), SCHEDULE.at_index(1), SCHEDULE.at_index(2)
USD_TIERS = [
    {"up_to": 100, "unit_amount": "0.10", "flat_amount": "5"},
    {"up_to": 1000, "unit_amount": "0.08", "flat_amount": "10"},
    {"up_to": None, "unit_amount": "0.05"},
]


def price(pid: str, currency: str, **fields: Any) -> dict[str, Any]:
    base = {"id": pid, "currency": currency, "billing_period": "MONTHLY", "billing_period_count": 1}
    return base | fields


def usd_plan() -> list[dict[str, Any]]:
    return [
        price(
            "price_platform",
            "usd",
            type="FIXED",
            billing_model="FLAT_FEE",
            amount="20.00",
            invoice_cadence="ARREAR",
            display_name="Platform fee",
        ),
        price(
            "price_seats",
            "usd",
            type="FIXED",
            billing_model="FLAT_FEE",
            amount="10.00",
            invoice_cadence="ADVANCE",
            display_name="Seats",
        ),
        price(
            "price_api",
            "usd",
            type="USAGE",
            billing_model="TIERED",
            tier_mode="SLAB",
            tiers=USD_TIERS,
            meter_id="meter_api",
            display_name="API calls",
        ),
        price("price_gb", "usd", type="USAGE", billing_model="FLAT_FEE", amount="0.015", meter_id="meter_gb"),
        price(
            "price_sms",
            "usd",
            type="USAGE",
            billing_model="PACKAGE",
            amount="5",
            transform_quantity={"divide_by": 100, "round": "up"},
            meter_id="meter_sms",
        ),
    ]


class TestPeriodEndInvoice:
    def test_usd_invoice_with_every_kind_of_line(self) -> None:
        # Given February closed with usage on two of three meters, three seats, and late January API usage
        late = LateUsage(usd_plan()[2], JAN.start, JAN.end, D(90), D(20))
        invoice = build_invoice(
            currency="USD",
            prices=usd_plan(),
            period=FEB,
            advance_period=MAR,
            usage={"meter_api": D(1001), "meter_gb": D(333)},
            late_usage=[late],
            fixed_quantities={"price_seats": D(3)},
        )
        # Then the lines come in a fixed order, each rounded once
        got = [(line.price_id, line.quantity, line.amount, line.is_adjustment) for line in invoice.lines]
        assert got == [
            ("price_platform", D(1), D("20.00"), False),
            ("price_api", D(1001), D("97.05"), False),
            ("price_gb", D(333), D("5.00"), False),
            ("price_sms", D(0), D("0.00"), False),
            ("price_seats", D(3), D("30.00"), False),
            ("price_api", D(20), D("11.80"), True),
        ]
        assert invoice.subtotal == invoice.total == D("163.85")
        assert money.format_money(invoice.total, invoice.currency) == "163.85"
        assert invoice.currency == "usd" and not invoice.is_zero_total

    def test_periods_and_descriptions(self) -> None:
        late = LateUsage(usd_plan()[2], JAN.start, JAN.end, D(90), D(20))
        invoice = build_invoice(
            currency="usd",
            prices=usd_plan(),
            period=FEB,
            advance_period=MAR,
            usage={"meter_api": D(1001), "meter_gb": D(333), "meter_sms": D(250)},
            late_usage=[late],
            labels={"price_sms": "Text messages", "price_api": "not used: the price has a display name"},
        )
        by_id = {(line.price_id, line.is_adjustment): line for line in invoice.lines}
        platform, seats = by_id["price_platform", False], by_id["price_seats", False]
        assert (platform.period_start, platform.period_end) == (FEB.start, FEB.end)  # arrear: closed period
        assert (seats.period_start, seats.period_end) == (MAR.start, MAR.end)  # advance: next period
        assert platform.description == "Platform fee"
        api = by_id["price_api", False]
        assert api.meter_id == "meter_api" and api.price_type == "USAGE"
        assert api.description == (
            "API calls: 1001 units (tier 1: 100 x 0.10 + 5.00 flat; tier 2: 900 x 0.08 + 10.00 flat; tier 3: 1 x 0.05)"
        )
        assert len(api.breakdown) == 3
        # No display name: the caller's label (the meter's name), never the meter's or the price's id.
        assert by_id["price_sms", False].description == "Text messages: 250 units (3 packages)"
        unlabelled = build_invoice(currency="usd", prices=usd_plan(), period=FEB, usage={"meter_sms": D(250)})
        sms = next(line for line in unlabelled.lines if line.price_id == "price_sms")
        assert sms.description == "Package: 250 units (3 packages)" and "price_sms" not in sms.description
        adjustment = by_id["price_api", True]
        assert (adjustment.period_start, adjustment.period_end) == (JAN.start, JAN.end)
        assert adjustment.description == "Late usage for 2025-01-31 to 2025-02-28: API calls: 20 units"

    def test_jpy_invoice(self) -> None:
        prices = [
            price("p_fixed", "jpy", type="FIXED", billing_model="FLAT_FEE", amount="5000", invoice_cadence="ADVANCE"),
            price(
                "p_vol",
                "jpy",
                type="USAGE",
                billing_model="TIERED",
                tier_mode="VOLUME",
                meter_id="m",
                tiers=[{"up_to": 10, "unit_amount": "100"}, {"up_to": None, "unit_amount": "75", "flat_amount": "500"}],
            ),
            price("p_flat", "jpy", type="USAGE", billing_model="FLAT_FEE", amount="0.5", meter_id="m2"),
        ]
        invoice = build_invoice(
            currency="jpy", prices=prices, period=FEB, advance_period=MAR, usage={"m": D(11), "m2": D(3)}
        )
        assert [line.amount for line in invoice.lines] == [D(1325), D(2), D(5000)]  # 1.5 yen rounds up to 2
        assert invoice.total == D(6327)
        assert money.format_money(invoice.total, "jpy") == "6327"
        assert money.to_minor_units(invoice.total, "jpy") == 6327

    def test_kwd_invoice(self) -> None:
        prices = [
            price(
                "p_slab",
                "kwd",
                type="USAGE",
                billing_model="TIERED",
                tier_mode="SLAB",
                meter_id="m",
                tiers=[
                    {"up_to": 10, "unit_amount": "0.1255"},
                    {"up_to": None, "unit_amount": "0.1", "flat_amount": "1.5"},
                ],
            ),
            price("p_flat", "kwd", type="USAGE", billing_model="FLAT_FEE", amount="0.0125", meter_id="m2"),
        ]
        invoice = build_invoice(currency="kwd", prices=prices, period=FEB, usage={"m": D(11), "m2": D(3)})
        assert [line.amount for line in invoice.lines] == [D("2.855"), D("0.038")]
        assert money.format_money(invoice.total, "kwd") == "2.893"
        assert money.to_minor_units(invoice.total, "kwd") == 2893

    def test_late_usage_lines_are_ordered_by_period(self) -> None:
        api = usd_plan()[2]
        late = [
            LateUsage(api, FEB.start, FEB.end, D(0), D(1)),
            LateUsage(api, JAN.start, JAN.end, D(100), D(1)),
        ]
        invoice = build_invoice(currency="usd", prices=[], period=None, late_usage=late)
        assert [(line.period_start, line.amount) for line in invoice.lines] == [
            (JAN.start, D("10.08")),  # crossing into tier 2 reaches its flat amount
            (FEB.start, D("5.10")),
        ]


class TestOpeningAndZeroInvoices:
    def test_opening_invoice_bills_only_advance_charges(self) -> None:
        invoice = build_invoice(currency="usd", prices=usd_plan(), period=None, advance_period=JAN)
        assert [(line.price_id, line.amount) for line in invoice.lines] == [("price_seats", D("10.00"))]
        assert invoice.lines[0].period_start == JAN.start

    def test_zero_total_invoice(self) -> None:
        usage_only = [p for p in usd_plan() if p["type"] == "USAGE"]
        invoice = build_invoice(currency="usd", prices=usage_only, period=FEB, usage={})
        assert len(invoice.lines) == 3 and all(line.amount == 0 for line in invoice.lines)
        assert invoice.is_zero_total
        assert money.format_money(invoice.total, "usd") == "0.00"

    def test_credit_from_late_volume_usage_makes_a_negative_total(self) -> None:
        volume = price(
            "p",
            "usd",
            type="USAGE",
            billing_model="TIERED",
            tier_mode="VOLUME",
            meter_id="m",
            tiers=[{"up_to": 10, "unit_amount": "2"}, {"up_to": None, "unit_amount": "1"}],
        )
        late = LateUsage(volume, JAN.start, JAN.end, D(10), D(1))
        invoice = build_invoice(currency="usd", prices=[volume], period=FEB, late_usage=[late])
        assert invoice.total == D("-9.00") and not invoice.is_zero_total

    def test_no_periods_no_lines(self) -> None:
        invoice = build_invoice(currency="eur", prices=usd_plan()[:0], period=None)
        assert invoice.lines == () and invoice.total == D("0.00") and invoice.is_zero_total


class TestRefusals:
    def test_price_in_another_currency(self) -> None:
        with pytest.raises(ValueError, match="is in usd, the invoice in eur"):
            build_invoice(currency="eur", prices=usd_plan(), period=FEB)

    def test_late_usage_in_another_currency(self) -> None:
        late = LateUsage(usd_plan()[2], JAN.start, JAN.end, D(1), D(1))
        with pytest.raises(ValueError, match="late usage price"):
            build_invoice(currency="eur", prices=[], period=FEB, late_usage=[late])

    def test_unknown_currency(self) -> None:
        with pytest.raises(ValueError, match="unsupported currency"):
            build_invoice(currency="zzz", prices=[], period=FEB)


@given(
    st.sampled_from(["usd", "jpy", "kwd"]),
    st.lists(st.decimals(min_value=0, max_value=10**6, places=3), min_size=3, max_size=3),
    st.decimals(min_value=0, max_value=10**4, places=2),
)
def test_total_equals_the_sum_stripe_bills(currency: str, usage: list[Decimal], late: Decimal) -> None:
    plan = [
        price("a", currency, type="USAGE", billing_model="FLAT_FEE", amount="0.0137", meter_id="m0"),
        price("b", currency, type="USAGE", billing_model="TIERED", tier_mode="SLAB", tiers=USD_TIERS, meter_id="m1"),
        price("c", currency, type="USAGE", billing_model="TIERED", tier_mode="VOLUME", tiers=USD_TIERS, meter_id="m2"),
        price("d", currency, type="FIXED", billing_model="FLAT_FEE", amount="3.3333", invoice_cadence="ADVANCE"),
    ]
    invoice = build_invoice(
        currency=currency,
        prices=plan,
        period=FEB,
        advance_period=MAR,
        usage={f"m{i}": q for i, q in enumerate(usage)},
        late_usage=[LateUsage(plan[1], JAN.start, JAN.end, usage[1], late)],
    )
    # What Stripe bills (the sum of the integer line amounts) equals our total, to the minor unit.
    minor = sum(money.to_minor_units(line.amount, currency) for line in invoice.lines)
    assert money.to_minor_units(invoice.total, currency) == minor
    assert invoice.total == sum((line.amount for line in invoice.lines), D(0))
