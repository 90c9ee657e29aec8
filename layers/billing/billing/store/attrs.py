"""DynamoDB attribute values ↔ Python values.

Written here rather than imported from ``boto3.dynamodb.types`` because importing anything from boto3 loads
boto3's session machinery and s3transfer (~120 ms of cold start); the product talks to AWS through botocore.
Numbers are ``Decimal`` both ways (never float), as boto3 does; integral numbers come back as ``Decimal`` too.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Context, Decimal, Inexact, Rounded
from typing import Any

# DynamoDB numbers: up to 38 significant digits, exponent -130..+125.
_NUMBER_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Inexact, Rounded])


def _number(value: int | Decimal) -> str:
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    return str(_NUMBER_CONTEXT.create_decimal(value))


def serialize_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, Decimal)):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("float is not allowed in DynamoDB items: use Decimal")
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize_value(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize_value(v) for v in value]}
    if isinstance(value, Set):
        if not value:
            raise TypeError("DynamoDB sets cannot be empty")
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, (int, Decimal)) and not isinstance(v, bool) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, (bytes, bytearray)) for v in value):
            return {"BS": [bytes(v) for v in value]}
        raise TypeError("a set must hold only strings, only numbers or only bytes")
    raise TypeError(f"unsupported type for DynamoDB: {type(value).__name__}")


def deserialize_value(value: Mapping[str, Any]) -> Any:
    ((kind, data),) = value.items()
    if kind == "S":
        return data
    if kind == "N":
        return Decimal(data)
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: deserialize_value(v) for k, v in data.items()}
    if kind == "L":
        return [deserialize_value(v) for v in data]
    if kind == "SS":
        return set(data)
    if kind == "NS":
        return {Decimal(v) for v in data}
    if kind == "B":
        return bytes(data)
    if kind == "BS":
        return {bytes(v) for v in data}
    raise TypeError(f"unknown DynamoDB type {kind}")
