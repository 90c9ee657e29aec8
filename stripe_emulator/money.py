"""Currencies: Stripe amounts are integers in the currency's minor unit; zero-decimal and three-decimal currencies."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
KNOWN = (
    ZERO_DECIMAL
    | THREE_DECIMAL
    | frozenset(
        [
            "usd",
            "eur",
            "gbp",
            "aud",
            "cad",
            "chf",
            "cny",
            "dkk",
            "hkd",
            "inr",
            "mxn",
            "nok",
            "nzd",
            "pln",
            "sek",
            "sgd",
            "thb",
            "zar",
            "brl",
            "czk",
            "huf",
            "ils",
            "myr",
            "php",
            "ron",
            "try",
            "aed",
        ]
    )
)


def exponent(currency: str) -> int:
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def display(amount: int, currency: str) -> str:
    """`1234, "usd"` → `1,234.00`... as `12.34 USD`; `1234, "jpy"` → `1234 JPY`."""
    exp = exponent(currency)
    value = Decimal(amount).scaleb(-exp)
    return f"{value:,.{exp}f} {currency.upper()}"


def round_minor(value: Decimal) -> int:
    """Round a fractional minor-unit amount to an integer (half away from zero), as decimal unit amounts are."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
