"""Validation of recorded traffic against Stripe's OpenAPI spec (2022-04-12 snapshot, API version 2020-08-27).

Requests: the decoded form/query parameters against the operation's requestBody schema (POST) or its query
parameters (GET/DELETE). Form values travel as strings, so `integer`, `number` and `boolean` accept their string
forms. Responses: against the operation's 200 schema, or Stripe's `error` schema for errors; every event's
`data.object` is also validated against the schema its `object` names. `nullable` becomes `anyOf [..., null]`;
`$ref`s resolve inside the spec; expandable fields are `anyOf [id string, object]` in the spec itself.
"""

from __future__ import annotations

import copy
import functools
import json
import lzma
import re
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft4Validator

# Stripe's spec as published, compressed (source and licence: tests/reference/README.md).
SPEC_PATH = Path(__file__).resolve().parents[1] / "reference" / "stripe" / "openapi-spec3-2022-04-12.json.xz"

# Deliberate deviations: (method, path template) -> {parameter: reason}. Anything else must match the spec.
REQUEST_DEVIATIONS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/v1/invoices"): {
        "currency": (
            "the invoice's currency on create (multi-currency customers), newer than this spec snapshot: "
            "https://docs.stripe.com/api/invoices/create#create_invoice-currency; only this endpoint accepts it"
        ),
    },
}
# Response fields that are allowed although the 2022-04-12 schema does not list them (schemas are open, so
# extra fields pass anyway; this documents the ones the emulator adds on purpose).
RESPONSE_ADDITIONS = {
    "invoice.days_until_due": "present in the API since 2020-08-27 docs, absent from this schema snapshot",
    "invoice.lines.total_count": "Stripe includes total_count on embedded lists",
    "webhook_endpoint.secret": "returned on create only, as Stripe does",
}


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items() if not k.startswith("x-")}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def spec() -> dict[str, Any]:
    raw = json.loads(lzma.decompress(SPEC_PATH.read_bytes()))
    return {"paths": raw["paths"], "components": _convert(raw["components"])}


def _is_int(_checker: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None)


def _is_number(_checker: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


def _is_bool(_checker: Any, value: Any) -> bool:
    return isinstance(value, bool) or value in ("true", "false")


_FORM_CHECKER = Draft4Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_int, "number": _is_number, "boolean": _is_bool}
)
FormValidator = jsonschema.validators.extend(Draft4Validator, type_checker=_FORM_CHECKER)


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    items = []
    for template in spec()["paths"]:
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        items.append((pattern, template))
    items.sort(key=lambda t: (t[1].count("{"), -len(t[1])))
    return items


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for pattern, template in _templates():
        if pattern.match(path):
            op = spec()["paths"][template].get(method.lower())
            if op is not None:
                return template, op
    raise AssertionError(f"{method} {path} is not an operation of Stripe's API")


def _validate(schema: dict[str, Any], instance: Any, cls: Any = Draft4Validator) -> list[str]:
    root = {**schema, "components": spec()["components"]}
    validator = cls(root)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in validator.iter_errors(instance)
    ]


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def request_errors(method: str, path: str, params: dict[str, Any]) -> list[str]:
    template, op = operation(method, path)
    allowed = REQUEST_DEVIATIONS.get((method, template), {})
    params = {k: v for k, v in params.items() if k not in allowed}
    if method == "POST":
        schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        schema = _convert(copy.deepcopy(schema))
    else:
        query = [p for p in op.get("parameters", []) if p["in"] == "query"]
        schema = {
            "type": "object",
            "properties": {p["name"]: _convert(p["schema"]) for p in query},
            "required": [p["name"] for p in query if p.get("required")],
            "additionalProperties": False,
        }
    return [f"request {method} {path}: {e}" for e in _validate(schema, params, FormValidator)]


def response_errors(method: str, path: str, status: int, body: Any) -> list[str]:
    if status != 200:
        return [f"error response {method} {path}: {e}" for e in _validate(component("error"), body)]
    _, op = operation(method, path)
    schema = _convert(op["responses"]["200"]["content"]["application/json"]["schema"])
    errors = [f"response {method} {path}: {e}" for e in _validate(schema, body)]
    for event in _events(body):
        errors += [f"event {event['type']} data.object: {e}" for e in object_errors(event["data"]["object"])]
    return errors


def object_errors(obj: dict[str, Any]) -> list[str]:
    name = obj.get("object", "")
    if obj.get("deleted"):
        name = f"deleted_{name}"
    if name not in spec()["components"]["schemas"]:
        return [f"no schema for object {name!r}"]
    return _validate(component(name), obj)


def _events(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and body.get("object") == "event":
        return [body]
    if isinstance(body, dict) and body.get("object") == "list":
        return [e for e in body.get("data", []) if isinstance(e, dict) and e.get("object") == "event"]
    return []


def traffic_errors(entries: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for entry in entries:
        method, path, status, body = entry["method"], entry["path"], entry["status"], entry["response"]
        if status == 200:
            errors += request_errors(method, path, entry["params"])
            errors += response_errors(method, path, status, body)
        else:
            if status == 402:
                errors += request_errors(method, path, entry["params"])
            errors += [f"error response {method} {path}: {e}" for e in _validate(component("error"), body)]
    return errors


def path_known(method: str, path: str) -> bool:
    try:
        operation(method, path)
    except AssertionError:
        return False
    return True
