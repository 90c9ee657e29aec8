"""Currency exponents, the one rounding rule, and conversions to and from minor units.

The exponent table is ISO 4217 List One ("current currency and funds code list"), as published by
SIX Financial Information, the ISO 4217 maintenance agency, including its 2024-2025 amendments
(ZWG replaces ZWL, XCG replaces ANG). Codes whose minor unit ISO lists as "N.A." (precious metals
XAU, XAG, XPD, XPT; the units of account XDR, XSU, XUA, XBA-XBD; the test codes XTS and XXX) have no
money amount and are not in the table. Recently withdrawn codes that stored prices may still carry
(ANG, CUC, HRK, SLL, ZWL) are kept with their last published exponent.

Two figures deliberately differ from List One, both to keep what we bill equal to what Stripe bills:

* MGA: ISO lists 2 (the ariary is nominally divided into 5 iraimbilanja), but no subunit circulates
  and Stripe's API treats MGA as a zero-decimal currency, so an MGA amount with decimals could not be
  sent to Stripe at all. We bill MGA with 0 decimals (as CLDR does).
* ISK: we bill with ISO's 0 decimals, but Stripe's API keeps ISK as a two-decimal currency for
  backwards compatibility (an amount of 500 is 5 krónur, and must be a multiple of 100), so
  ``to_minor_units`` multiplies ISK amounts by 100. ``stripe_exponent`` tells the two apart.

Stripe's zero-decimal list (BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF) agrees with
this table. Stripe asks that card payments in its three-decimal currencies (BHD, JOD, KWD, OMR, TND)
end in 0; that is a payment-network rule for the charge, not a representation rule, and the amounts
here keep their ISO three decimals.

Rounding: ROUND_HALF_UP (half away from zero), the mode Stripe and Flexprice use for invoice lines.
It is applied once per line by ``round_minor``; nothing else in the domain rounds money.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)
from types import MappingProxyType

ROUNDING = ROUND_HALF_UP
"""The one rounding mode for money: half away from zero."""

PRECISION = 80
"""Significant digits kept by money arithmetic: far beyond any real invoice, so nothing rounds early."""

ROUNDING_CONTEXT = Context(prec=PRECISION, rounding=ROUNDING, traps=[InvalidOperation, DivisionByZero, Overflow])
"""The context ``round_minor`` quantizes in (independent of the thread's current context)."""

EXACT_CONTEXT = Context(
    prec=PRECISION, rounding=ROUNDING, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded]
)
"""For sums and products that must be exact: an operation that would round raises instead."""

_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX UYI VND VUV XAF XOF XPF"  # MGA: see module docstring
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL = "CLF UYW"
_TWO_DECIMAL = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
    "GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
    "LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB "
    "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP "
    "SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
_WITHDRAWN_TWO_DECIMAL = "ANG CUC HRK SLL ZWL"


def _build() -> Mapping[str, int]:
    table: dict[str, int] = {}
    for codes, digits in (
        (_ZERO_DECIMAL, 0),
        (_TWO_DECIMAL, 2),
        (_WITHDRAWN_TWO_DECIMAL, 2),
        (_THREE_DECIMAL, 3),
        (_FOUR_DECIMAL, 4),
    ):
        for code in codes.split():
            if code in table:
                raise AssertionError(f"currency {code} listed twice")
            table[code] = digits
    return MappingProxyType(table)


EXPONENTS: Mapping[str, int] = _build()
"""Currency code (upper case) to the number of decimals money is billed in."""

_STRIPE_EXPONENT_OVERRIDES: Mapping[str, int] = MappingProxyType({"ISK": 2})


def _code(currency: str) -> str:
    if not isinstance(currency, str):
        raise ValueError("currency must be a three-letter ISO 4217 code")
    code = currency.strip().upper()
    if code not in EXPONENTS:
        raise ValueError(f"unsupported currency {currency!r}: expected an ISO 4217 code such as 'usd'")
    return code


def normalize_currency(currency: str) -> str:
    """The currency code in lower case, as the API and Stripe spell it; unknown codes raise ValueError."""
    return _code(currency).lower()


def is_supported(currency: str) -> bool:
    return isinstance(currency, str) and currency.strip().upper() in EXPONENTS


def exponent(currency: str) -> int:
    """Decimals of the currency's minor unit (case-insensitive); ValueError for an unknown code."""
    return EXPONENTS[_code(currency)]


def stripe_exponent(currency: str) -> int:
    """Decimals Stripe's API uses for the currency's integer ``amount`` fields."""
    code = _code(currency)
    return _STRIPE_EXPONENT_OVERRIDES.get(code, EXPONENTS[code])


def _finite(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or isinstance(amount, bool):
        raise TypeError("money must be a Decimal")
    if not amount.is_finite():
        raise ValueError("money must be a finite decimal")
    return amount


def quantum(currency: str) -> Decimal:
    """The currency's minor unit as a Decimal: 0.01 for USD, 1 for JPY, 0.001 for KWD."""
    return Decimal(1).scaleb(-exponent(currency))


def round_minor(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half away from zero (ROUND_HALF_UP).

    The result always carries exactly the currency's decimals (``Decimal("12.50")`` for USD).
    """
    return _finite(amount).quantize(quantum(currency), context=ROUNDING_CONTEXT)


def is_rounded(amount: Decimal, currency: str) -> bool:
    """True when the amount has no precision beyond the currency's minor unit."""
    return _finite(amount) == round_minor(amount, currency)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The integer Stripe expects for ``amount`` (cents for USD, yen for JPY, fils for KWD).

    Exact: an amount with more precision than the currency allows raises ValueError, since every
    amount is rounded once (``round_minor``) before it reaches the Stripe edge.
    """
    _finite(amount)
    if not is_rounded(amount, currency):
        raise ValueError(f"{amount} has more decimals than {_code(currency)} allows ({exponent(currency)})")
    return int(amount.scaleb(stripe_exponent(currency), context=EXACT_CONTEXT))


def from_minor_units(minor: int, currency: str) -> Decimal:
    """The Decimal amount of a Stripe integer amount, with exactly the currency's decimals."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("minor units must be an int")
    amount = Decimal(minor).scaleb(-stripe_exponent(currency), context=EXACT_CONTEXT)
    if not is_rounded(amount, currency):
        raise ValueError(f"{minor} is not a whole number of {_code(currency)} minor units")
    return round_minor(amount, currency)


def format_money(amount: Decimal, currency: str) -> str:
    """The API's decimal string: exactly the currency's decimals, no exponent ("12.50", "1000", "1.250").

    The amount is rounded with ``round_minor`` first, so already-rounded amounts render unchanged.
    """
    rounded = round_minor(amount, currency)
    if rounded.is_zero():
        rounded = abs(rounded)  # never "-0.00"
    return format(rounded, "f")
