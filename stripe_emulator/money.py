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


# Stripe's minimum charge amounts, in minor units, per presentment currency ("Minimum and maximum charge amounts",
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts). Currencies not in the table have no minimum
# here (Stripe converts $0.50 into them at the day's rate, which the emulator does not model).
MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


def minimum_charge(currency: str) -> int:
    """The smallest amount Stripe charges in this currency (1 minor unit when the table has no entry)."""
    return MINIMUM_CHARGE.get(currency.lower(), 1)


def below_minimum_message(currency: str) -> str:
    minimum = Decimal(minimum_charge(currency)).scaleb(-exponent(currency))
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency.lower(), "")
    return f"Amount must be at least {symbol}{minimum:.{exponent(currency)}f} {currency.lower()}"


def three_decimal_ok(amount: int, currency: str) -> bool:
    """Three-decimal currencies (BHD, JOD, KWD, OMR, TND) charge only amounts whose last digit is 0
    (https://docs.stripe.com/currencies#three-decimal)."""
    return currency.lower() not in THREE_DECIMAL or amount % 10 == 0
