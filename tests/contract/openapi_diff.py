"""Differences between our OpenAPI document and Flexprice's, as stable one-line keys.

Ours lives under ``/api/v1``; Flexprice's paths are relative to its ``/v1`` server. Path parameters are compared by
position, not by name (``/customers/{id}`` matches ``/customers/{customer_id}``).
"""

from __future__ import annotations

import re
from typing import Any

PREFIX = "/api/v1"
METHODS = ("get", "put", "post", "delete", "patch")


def normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


class Document:
    def __init__(self, spec: dict[str, Any], prefix: str = "") -> None:
        self.spec = spec
        self.ops: dict[tuple[str, str], dict[str, Any]] = {}
        self.display: dict[str, str] = {}
        for path, item in spec["paths"].items():
            if prefix and not path.startswith(prefix):
                continue
            short = path[len(prefix) :] if prefix else path
            key = normalize(short)
            self.display.setdefault(key, short)
            for method, op in item.items():
                if method in METHODS:
                    self.ops[(key, method)] = op

    def resolve(self, schema: dict[str, Any] | None) -> dict[str, Any]:
        seen = 0
        while schema and "$ref" in schema and seen < 20:
            name = schema["$ref"].rsplit("/", 1)[1]
            schema = self.spec["components"]["schemas"][name]
            seen += 1
        return schema or {}

    def properties(self, schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """An object's properties, through ``$ref``, ``allOf`` and an optional's ``anyOf``."""
        schema = self.resolve(schema)
        props: dict[str, dict[str, Any]] = dict(schema.get("properties") or {})
        for part in schema.get("allOf") or []:
            props.update(self.properties(part))
        for part in schema.get("anyOf") or schema.get("oneOf") or []:
            if self.resolve(part).get("type") == "object" or "properties" in self.resolve(part):
                props.update(self.properties(part))
        return props

    def enum(self, schema: dict[str, Any] | None) -> set[str] | None:
        schema = self.resolve(schema)
        if "enum" in schema:
            return {str(v) for v in schema["enum"] if v is not None}
        if "const" in schema:
            return {str(schema["const"])}
        for key in ("anyOf", "oneOf", "allOf"):
            for part in schema.get(key) or []:
                found = self.enum(part)
                if found:
                    return found
        return None

    def body(self, op: dict[str, Any]) -> dict[str, Any] | None:
        content = (op.get("requestBody") or {}).get("content") or {}
        media = content.get("application/json")
        return media.get("schema") if media else None

    def success(self, op: dict[str, Any]) -> list[str]:
        return sorted(code for code in op.get("responses", {}) if code.startswith("2"))


def differences(ours_spec: dict[str, Any], theirs_spec: dict[str, Any]) -> list[str]:
    ours, theirs = Document(ours_spec, PREFIX), Document(theirs_spec)
    out: list[str] = []
    our_paths = {path for path, _ in ours.ops}
    for path in sorted(our_paths):
        shown = ours.display[path]
        for method in METHODS:
            mine, other = ours.ops.get((path, method)), theirs.ops.get((path, method))
            name = f"{method.upper()} {shown}"
            if mine is None and other is not None:
                out.append(f"{name}: not served (Flexprice has it)")
                continue
            if mine is None or other is None:
                if mine is not None:
                    out.append(f"{name}: not in Flexprice's spec")
                continue
            if ours.success(mine) != theirs.success(other):
                out.append(f"{name}: success status {ours.success(mine)} vs Flexprice {theirs.success(other)}")
            out += _body_differences(name, ours, theirs, ours.body(mine), theirs.body(other))
    return out


def _body_differences(
    name: str, ours: Document, theirs: Document, mine: dict[str, Any] | None, other: dict[str, Any] | None, at: str = ""
) -> list[str]:
    out: list[str] = []
    if mine is None and other is None:
        return out
    if mine is None or other is None:
        return [f"{name}: request body {'only ours' if other is None else 'only Flexprice'}"]
    a, b = ours.properties(mine), theirs.properties(other)
    for field in sorted(set(a) - set(b)):
        out.append(f"{name}: field {at}{field} only ours")
    for field in sorted(set(b) - set(a)):
        out.append(f"{name}: field {at}{field} only Flexprice")
    for field in sorted(set(a) & set(b)):
        ea, eb = ours.enum(a[field]), theirs.enum(b[field])
        if ea is not None and eb is not None and ea != eb:
            extra = sorted(ea - eb)
            missing = sorted(eb - ea)
            out.append(f"{name}: enum {at}{field} ours-only {extra} Flexprice-only {missing}")
        if not at:  # one level of nesting (meter, aggregation, tiers, sync_config...)
            sub_a, sub_b = _object_of(ours, a[field]), _object_of(theirs, b[field])
            if sub_a is not None and sub_b is not None:
                out += _body_differences(name, ours, theirs, sub_a, sub_b, f"{field}.")
    return out


def _object_of(doc: Document, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema of a field (directly, optional, or the items of an array), or None."""
    schema = doc.resolve(schema)
    if schema.get("type") == "array":
        return _object_of(doc, schema.get("items") or {})
    if doc.properties(schema):
        return schema
    for part in schema.get("anyOf") or []:
        found = _object_of(doc, part)
        if found is not None:
            return found
    return None
