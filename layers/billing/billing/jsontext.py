"""JSON text from clients, parsed with bounds: every request body and every webhook goes through ``loads``.

Python's parser refuses integers of more than 4,300 digits with a ``ValueError`` and very deep nesting with a
``RecursionError``; neither is a ``JSONDecodeError``. Here every way a text can fail is one ``BadJson``, and
what parses is bounded further:

- numbers are exact (``Decimal``) and fit DynamoDB's number type: at most 38 significant digits, magnitude
  between 1E-130 and 1E+126 (a number outside that could be stored nowhere);
- arrays and objects nest at most ``MAX_DEPTH`` levels (no request of the API nests more than a few).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DEPTH = 32
MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125


class BadJson(ValueError):
    """The text is not JSON, or not JSON this API can hold."""


def _number(text: str) -> Decimal:
    if len(text) > 400:
        raise BadJson(f"a number has more than {MAX_DIGITS} significant digits")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadJson(f"invalid number {text[:40]!r}") from None
    if value:
        significant = "".join(map(str, value.as_tuple().digits)).rstrip("0")
        if len(significant) > MAX_DIGITS:
            raise BadJson(f"a number has more than {MAX_DIGITS} significant digits")
        if not MIN_ADJUSTED_EXPONENT <= value.adjusted() <= MAX_ADJUSTED_EXPONENT:
            raise BadJson("a number is out of range (magnitude 1E-130 to 1E+126)")
    return value


def _integer(text: str) -> int:
    value = _number(text)
    return int(value)


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _float(text: str) -> float:
    return float(_number(text))


def loads(data: bytes | str, *, exact: bool = True) -> Any:
    """Parse a client's JSON text (fractions as ``Decimal``, or ``float`` when not ``exact``; integers as ``int``).
    Raises ``BadJson``."""
    try:
        value = json.loads(data, parse_float=_number if exact else _float, parse_int=_integer, parse_constant=_constant)
    except BadJson:
        raise
    except RecursionError:
        raise BadJson(f"nesting is deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise BadJson("not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError, and the integer-length limit of int()
        raise BadJson(str(exc)[:200]) from None
    if _depth(value) > MAX_DEPTH:
        raise BadJson(f"nesting is deeper than {MAX_DEPTH} levels")
    return value
