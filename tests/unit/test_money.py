"""Currency exponents, the one rounding rule, minor units and API formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import money
from billing.domain.money import (
    EXPONENTS,
    exponent,
    format_money,
    from_minor_units,
    round_minor,
    stripe_exponent,
    to_minor_units,
)

D = Decimal

ISO_ZERO = ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV"]
ISO_ZERO += ["XAF", "XOF", "XPF"]
ISO_THREE = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
STRIPE_ZERO_DECIMAL = ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND"]
STRIPE_ZERO_DECIMAL += ["VUV", "XAF", "XOF", "XPF"]


class TestExponentTable:
    @pytest.mark.parametrize("code", ISO_ZERO)
    def test_zero_decimal_currencies(self, code: str) -> None:
        assert exponent(code) == 0

    @pytest.mark.parametrize("code", ISO_THREE)
    def test_three_decimal_currencies(self, code: str) -> None:
        assert exponent(code) == 3

    @pytest.mark.parametrize("code", ["CLF", "UYW"])
    def test_four_decimal_funds_codes(self, code: str) -> None:
        assert exponent(code) == 4

    @pytest.mark.parametrize(
        "code", ["USD", "EUR", "GBP", "CHF", "CAD", "AUD", "INR", "CNY", "BRL", "MXN", "HUF", "TWD", "IDR", "ZAR"]
    )
    def test_common_two_decimal_currencies(self, code: str) -> None:
        assert exponent(code) == 2

    def test_only_the_listed_currencies_differ_from_two(self) -> None:
        # Given the table, then every code outside the 0/3/4 lists (and MGA, see below) has 2 decimals.
        special = set(ISO_ZERO) | set(ISO_THREE) | {"CLF", "UYW", "MGA"}
        assert {code for code, digits in EXPONENTS.items() if digits != 2} == special

    def test_recent_codes_are_present(self) -> None:
        for code in ("ZWG", "XCG", "SLE", "VED", "VES", "MRU", "STN", "BYN"):
            assert exponent(code) == 2

    def test_mga_is_zero_decimal_as_stripe_bills_it(self) -> None:
        assert exponent("MGA") == 0

    def test_stripe_zero_decimal_list_agrees(self) -> None:
        for code in STRIPE_ZERO_DECIMAL:
            assert stripe_exponent(code) == 0, code

    def test_isk_is_two_decimal_in_stripe_api(self) -> None:
        assert exponent("ISK") == 0
        assert stripe_exponent("ISK") == 2

    def test_table_codes_are_three_upper_case_letters(self) -> None:
        assert len(EXPONENTS) > 150
        for code in EXPONENTS:
            assert len(code) == 3 and code.isalpha() and code.isupper()

    @pytest.mark.parametrize("code", ["usd", "Usd", " USD "])
    def test_case_insensitive(self, code: str) -> None:
        assert exponent(code) == 2
        assert money.normalize_currency(code) == "usd"

    @pytest.mark.parametrize("code", ["", "US", "USDX", "ABC", "XAU", "XXX", "XTS", "XDR", "dollar"])
    def test_unknown_currency_is_a_value_error(self, code: str) -> None:
        with pytest.raises(ValueError, match="unsupported currency"):
            exponent(code)
        assert not money.is_supported(code)

    def test_non_string_currency_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            exponent(None)  # type: ignore[arg-type]


class TestRounding:
    @pytest.mark.parametrize(
        ("amount", "currency", "expected"),
        [
            ("1.005", "usd", "1.01"),
            ("1.004999", "usd", "1.00"),
            ("-1.005", "usd", "-1.01"),  # half away from zero
            ("0.5", "jpy", "1"),
            ("1.5", "jpy", "2"),
            ("2.5", "jpy", "3"),  # half up, not banker's rounding
            ("-2.5", "jpy", "-3"),
            ("1.2345", "kwd", "1.235"),
            ("1.2344", "kwd", "1.234"),
            ("12.5", "usd", "12.50"),
            ("0.00005", "clf", "0.0001"),
            ("123456789012345678901234567890.125", "usd", "123456789012345678901234567890.13"),
        ],
    )
    def test_half_up(self, amount: str, currency: str, expected: str) -> None:
        result = round_minor(D(amount), currency)
        assert result == D(expected)
        assert str(result) == expected  # exactly the currency's decimals

    def test_rejects_floats_and_non_finite(self) -> None:
        with pytest.raises(TypeError):
            round_minor(1.5, "usd")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            round_minor(D("NaN"), "usd")
        with pytest.raises(ValueError):
            round_minor(D("Infinity"), "usd")

    @given(st.decimals(allow_nan=False, allow_infinity=False, places=6), st.sampled_from(sorted(EXPONENTS)))
    def test_rounding_is_idempotent_and_within_half_a_unit(self, amount: Decimal, currency: str) -> None:
        once = round_minor(amount, currency)
        assert round_minor(once, currency) == once
        assert abs(once - amount) <= money.quantum(currency) / 2


class TestMinorUnits:
    @pytest.mark.parametrize(
        ("amount", "currency", "minor"),
        [
            ("12.50", "usd", 1250),
            ("0.01", "usd", 1),
            ("1000", "jpy", 1000),
            ("1.250", "kwd", 1250),
            ("1.25", "kwd", 1250),
            ("5", "isk", 500),  # Stripe keeps ISK two-decimal
            ("0", "usd", 0),
            ("-3.20", "eur", -320),
            ("1.2345", "clf", 12345),
        ],
    )
    def test_to_and_from(self, amount: str, currency: str, minor: int) -> None:
        assert to_minor_units(D(amount), currency) == minor
        assert from_minor_units(minor, currency) == D(amount)

    @pytest.mark.parametrize(("amount", "currency"), [("12.505", "usd"), ("1.5", "jpy"), ("1.2345", "kwd")])
    def test_refuses_more_precision_than_the_currency_allows(self, amount: str, currency: str) -> None:
        with pytest.raises(ValueError, match="more decimals"):
            to_minor_units(D(amount), currency)

    def test_trailing_zeros_beyond_the_exponent_are_fine(self) -> None:
        assert to_minor_units(D("12.5000"), "usd") == 1250
        assert to_minor_units(D("7.000"), "jpy") == 7

    def test_from_minor_units_refuses_a_fractional_krona(self) -> None:
        with pytest.raises(ValueError, match="whole number"):
            from_minor_units(550, "isk")

    def test_from_minor_units_needs_an_int(self) -> None:
        with pytest.raises(TypeError):
            from_minor_units(True, "usd")
        with pytest.raises(TypeError):
            from_minor_units(D(5), "usd")  # type: ignore[arg-type]

    def test_huge_amounts_stay_exact(self) -> None:
        amount = D("98765432109876543210987654321.99")
        assert to_minor_units(amount, "usd") == 9876543210987654321098765432199
        assert from_minor_units(9876543210987654321098765432199, "usd") == amount

    @given(data=st.data())
    def test_round_trip_for_every_currency_in_the_table(self, data: st.DataObject) -> None:
        for currency in sorted(EXPONENTS):
            minor = data.draw(st.integers(min_value=-(10**18), max_value=10**18), label=currency)
            if stripe_exponent(currency) > exponent(currency):
                minor -= minor % 10 ** (stripe_exponent(currency) - exponent(currency))
            amount = from_minor_units(minor, currency)
            assert amount.as_tuple().exponent == -exponent(currency)
            assert to_minor_units(amount, currency) == minor

    @given(st.decimals(allow_nan=False, allow_infinity=False, places=4), st.sampled_from(sorted(EXPONENTS)))
    def test_rounded_amounts_round_trip(self, amount: Decimal, currency: str) -> None:
        rounded = round_minor(amount, currency)
        assert from_minor_units(to_minor_units(rounded, currency), currency) == rounded


class TestFormat:
    @pytest.mark.parametrize(
        ("amount", "currency", "text"),
        [
            ("12.5", "usd", "12.50"),
            ("1000", "jpy", "1000"),
            ("1.25", "kwd", "1.250"),
            ("0", "usd", "0.00"),
            ("0", "jpy", "0"),
            ("-0", "usd", "0.00"),
            ("-0.001", "usd", "0.00"),
            ("-12.345", "usd", "-12.35"),
            ("1E+3", "usd", "1000.00"),
            ("1E+30", "jpy", "1000000000000000000000000000000"),
            ("0.00001", "kwd", "0.000"),
        ],
    )
    def test_exact_decimals_no_exponent(self, amount: str, currency: str, text: str) -> None:
        assert format_money(D(amount), currency) == text

    @given(st.decimals(allow_nan=False, allow_infinity=False, places=3), st.sampled_from(sorted(EXPONENTS)))
    def test_format_parses_back_to_the_rounded_amount(self, amount: Decimal, currency: str) -> None:
        text = format_money(amount, currency)
        assert "E" not in text and "e" not in text
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert decimals == exponent(currency)
        assert D(text) == round_minor(amount, currency)
