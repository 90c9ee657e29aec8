"""Discounts, credits and taxes in the one calculation order, against tables and an independent oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import money
from billing.domain.adjustments import CreditSource, Discount, Line, TaxRate, adjust, credit_order, spread

D = Decimal
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_worked_example_of_billing_math() -> None:
    """docs/billing-math.md, "Discounts, credits and taxes": every figure of the worked example."""
    lines = [Line("l1", D("49.00"), "price_platform"), Line("l2", D("123.45"), "price_api"), Line("l3", D("-3.45"))]
    out = adjust(
        "usd",
        lines,
        discounts=[
            Discount("c_api", "API 10% off", "percentage", percentage_off=D("10"), price_id="price_api"),
            Discount("c_welcome", "Welcome", "fixed", amount_off=D("5.00")),
            Discount("c_loyal", "Loyalty 15%", "percentage", percentage_off=D("15")),
        ],
        credits=[
            CreditSource("w_promo", D("20.005"), priority=2),
            CreditSource("w_paid", D("30.00"), priority=1, expires_at=NOW + timedelta(days=30)),
            CreditSource("w_old", D("99"), priority=1, expires_at=NOW - timedelta(seconds=1)),
        ],
        taxes=[
            TaxRate("t_vat", "VAT 20%", "percentage", percentage=D("20")),
            TaxRate("t_fee", "Filing fee", "fixed", fixed_amount=D("0.50")),
        ],
        at=NOW,
    )
    assert out.subtotal == D("169.00")
    # line: 10% of 123.45 = 12.345 -> 12.35; invoice: 169.00 - 12.35 = 156.65; -5.00 = 151.65; 15% = 22.7475 -> 22.75
    assert [(d.discount_id, d.original, d.amount) for d in out.discounts] == [
        ("c_api", D("123.45"), D("12.35")),
        ("c_welcome", D("156.65"), D("5.00")),
        ("c_loyal", D("151.65"), D("22.75")),
    ]
    assert out.total_discount == D("40.10")
    # 128.90 left: the expired wallet pays nothing, priority 1 pays 30.00, priority 2 pays its whole cents (20.00)
    assert [(c.source_id, c.amount) for c in out.credits] == [("w_paid", D("30.00")), ("w_promo", D("20.00"))]
    assert out.taxable == D("78.90")
    assert [(t.tax_id, t.amount) for t in out.taxes] == [("t_vat", D("15.78")), ("t_fee", D("0.50"))]
    assert out.total == D("95.18") == D("169.00") - D("40.10") - D("50.00") + D("16.28")
    assert [line.line_discount for line in out.lines] == [D("0.00"), D("12.35"), D("0.00")]
    assert sum(line.invoice_discount for line in out.lines) == D("27.75")
    assert sum(line.credits for line in out.lines) == D("50.00")
    assert out.lines[2].invoice_discount == out.lines[2].credits == D("0.00")  # a credit line takes no share


@pytest.mark.parametrize(
    ("currency", "amount", "pct", "off"),
    [("jpy", "1001", "12.5", "125"), ("kwd", "10.005", "33.3333", "3.335"), ("eur", "0.05", "10", "0.01")],
)
def test_percentages_round_half_up_in_the_currency(currency: str, amount: str, pct: str, off: str) -> None:
    out = adjust(currency, [Line("l", D(amount))], discounts=[Discount("c", "c", "percentage", percentage_off=D(pct))])
    assert out.total_discount == D(off)


def test_nothing_goes_below_zero() -> None:
    out = adjust(
        "usd",
        [Line("l", D("10.00"), "p")],
        discounts=[
            Discount("a", "a", "fixed", amount_off=D("7"), price_id="p"),
            Discount("b", "b", "fixed", amount_off=D("7"), price_id="p"),
            Discount("c", "c", "fixed", amount_off=D("7")),
        ],
        credits=[CreditSource("w", D("5"))],
        taxes=[TaxRate("t", "t", "fixed", fixed_amount=D("1"))],
    )
    assert [d.amount for d in out.discounts] == [D("7.00"), D("3.00"), D("0.00")]
    assert out.credits == () and out.total_tax == D("0.00") and out.total == D("0.00")


def test_credit_order_is_priority_then_expiry_then_given_order() -> None:
    later, sooner = NOW + timedelta(days=9), NOW + timedelta(days=1)
    sources = [
        CreditSource("a", D(1), 2, None),
        CreditSource("b", D(1), 1, None),
        CreditSource("c", D(1), 1, later),
        CreditSource("d", D(1), 1, sooner),
        CreditSource("e", D(1), 1, sooner),
    ]
    assert [s.id for s in credit_order(sources)] == ["d", "e", "c", "b", "a"]


def test_spread_sums_exactly_and_ties_go_first() -> None:
    assert spread(D("0.10"), [D(1), D(1), D(1)], "usd") == [D("0.04"), D("0.03"), D("0.03")]
    assert spread(D("7"), [D(0), D(5)], "jpy") == [D("0"), D("7")]


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="percentage_off"):
        Discount("c", "c", "percentage", percentage_off=D("101"))
    with pytest.raises(ValueError, match="tax rate type"):
        TaxRate("t", "t", "compound")
    with pytest.raises(ValueError, match="not rounded"):
        adjust("usd", [Line("l", D("1.005"))])


# -- the oracle: the same rules in integer minor units and exact fractions, written independently ---------------


def _half_up(value: Fraction) -> int:
    """Round a Fraction of minor units half away from zero."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return sign * whole


def oracle(currency, lines, discounts, credits, taxes):
    """(subtotal, discount, credits, tax, total) in minor units."""
    scale = 10 ** money.exponent(currency)
    minor = [int(D(amount) * scale) for amount, _price in lines]
    left = list(minor)
    discount_total = 0
    for kind, value, price in discounts:
        if price is None:
            continue
        for i, (_amount, line_price) in enumerate(lines):
            if line_price != price or left[i] <= 0:
                continue
            off = _half_up(Fraction(left[i]) * Fraction(value) / 100) if kind == "percentage" else int(D(value) * scale)
            off = min(off, left[i])
            left[i] -= off
            discount_total += off
    rest = sum(left)
    for kind, value, price in discounts:
        if price is not None or rest <= 0:
            continue
        off = _half_up(Fraction(rest) * Fraction(value) / 100) if kind == "percentage" else int(D(value) * scale)
        off = min(off, rest)
        rest -= off
        discount_total += off
    credit_total = 0
    for _priority, _n, balance in sorted((p, n, b) for n, (p, b) in enumerate(credits)):
        if rest <= 0:
            break
        take = min(int(Fraction(balance) * scale), rest)  # whole minor units, rounded down
        rest -= take
        credit_total += take
    tax_total = 0
    for kind, value in taxes:
        if rest <= 0:
            continue
        tax_total += _half_up(Fraction(rest) * Fraction(value) / 100) if kind == "percentage" else int(D(value) * scale)
    subtotal = sum(minor)
    return subtotal, discount_total, credit_total, tax_total, subtotal - discount_total - credit_total + tax_total


CURRENCIES = ["usd", "eur", "jpy", "kwd"]


@st.composite
def invoices(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    places = money.exponent(currency)
    amount = st.integers(min_value=0, max_value=10**7).map(lambda n: str(D(n).scaleb(-places)))
    prices = ["p1", "p2", "p3"]
    lines = draw(st.lists(st.tuples(amount, st.sampled_from([*prices, None])), min_size=1, max_size=5))
    pct = st.decimals(min_value=0, max_value=100, places=2).map(str)
    discounts = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("percentage"), pct, st.sampled_from([*prices, None])),
                st.tuples(st.just("fixed"), amount, st.sampled_from([*prices, None])),
            ),
            max_size=4,
        )
    )
    credit_amount = st.decimals(min_value=0, max_value=10**5, places=places + 2).map(str)
    credits = draw(st.lists(st.tuples(st.integers(0, 3), credit_amount), max_size=4))
    taxes = draw(
        st.lists(
            st.one_of(st.tuples(st.just("percentage"), pct), st.tuples(st.just("fixed"), amount)),
            max_size=3,
        )
    )
    return currency, lines, discounts, credits, taxes


def to_domain(currency, lines, discounts, credits, taxes):
    return dict(
        currency=currency,
        lines=[Line(f"l{i}", D(a), p) for i, (a, p) in enumerate(lines)],
        discounts=[
            Discount(
                f"d{i}",
                f"d{i}",
                kind,
                amount_off=D(v) if kind == "fixed" else D(0),
                percentage_off=D(v) if kind == "percentage" else D(0),
                price_id=p,
            )
            for i, (kind, v, p) in enumerate(discounts)
        ],
        credits=[CreditSource(f"w{i}", D(b), priority=p) for i, (p, b) in enumerate(credits)],
        taxes=[
            TaxRate(
                f"t{i}",
                f"t{i}",
                kind,
                percentage=D(v) if kind == "percentage" else D(0),
                fixed_amount=D(v) if kind == "fixed" else D(0),
            )
            for i, (kind, v) in enumerate(taxes)
        ],
    )


@settings(max_examples=300, derandomize=True, deadline=None)
@given(invoices())
def test_adjust_agrees_with_the_oracle(case) -> None:
    currency = case[0]
    out = adjust(**to_domain(*case))
    scale = 10 ** money.exponent(currency)
    got = tuple(int(x * scale) for x in (out.subtotal, out.total_discount, out.total_credits, out.total_tax, out.total))
    assert got == oracle(*case)
    for line in out.lines:
        assert line.line_discount >= 0 and line.invoice_discount >= 0 and line.credits >= 0
    assert sum(line.invoice_discount + line.line_discount for line in out.lines) == out.total_discount
    assert sum(line.credits for line in out.lines) == out.total_credits
    assert all(money.is_rounded(x, currency) for x in (out.total, out.total_tax, out.total_credits))
