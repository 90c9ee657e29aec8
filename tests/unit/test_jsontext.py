"""Client JSON is parsed with bounds: every way a text can fail is one BadJson (a 400), never a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import jsontext
from billing.errors import ValidationFailed
from billing.http import Request


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1' + "0" * 5000 + "}",  # more digits than int() converts
        '{"a": ' + "7" * 39 + "}",  # more than DynamoDB's 38 significant digits
        '{"a": 1.' + "1" * 60 + "}",
        '{"a": 1e200}',
        '{"a": 1e-200}',
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",  # the parser's own recursion limit
        '{"a": ' + "[" * 40 + "]" * 40 + "}",  # deeper than MAX_DEPTH
        '{"a": NaN}',
        '{"a": Infinity}',
        "{",
        b'{"a": "\xff"}',
    ],
)
def test_unusable_json_is_bad_json(text: str | bytes) -> None:
    with pytest.raises(jsontext.BadJson):
        jsontext.loads(text.encode() if isinstance(text, str) else text)


def test_what_parses_is_exact_and_plain() -> None:
    assert jsontext.loads(b'{"a": 12.50, "b": 3, "c": [1e3, -0.5], "d": 1' + b"0" * 37 + b"}") == {
        "a": Decimal("12.50"),
        "b": 3,
        "c": [Decimal("1e3"), Decimal("-0.5")],
        "d": 10**37,
    }
    assert jsontext.loads(b'{"a": 12.5}', exact=False) == {"a": 12.5}
    nested = "[" * jsontext.MAX_DEPTH + "]" * jsontext.MAX_DEPTH
    assert jsontext.loads(nested) is not None


def test_a_request_body_that_cannot_be_held_is_a_400_with_details() -> None:
    req = Request({"body": '{"name": ' + "[" * 50_000 + "]" * 50_000 + "}"})
    with pytest.raises(ValidationFailed) as bad:
        req.json()
    envelope = bad.value.envelope()
    assert envelope["http_status_code"] == 400 and envelope["details"]["reason"] == "malformed_json"
    assert envelope["details"]["errors"][0]["field"] == "body"
