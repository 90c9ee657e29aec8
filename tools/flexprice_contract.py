"""Distil Flexprice's OpenAPI spec into the contract that tests/reference/flexprice/contract.json holds.

    python tools/flexprice_contract.py --spec PATH/TO/flexprice-openapi.json   # write the contract
    python tools/flexprice_contract.py --spec PATH --check                     # exit 1 when the contract is stale

For every operation on a path that we serve (docs/openapi.json, under /api/v1; path parameters compared by position)
the contract keeps the interface's facts and nothing else: path, method, success status codes, parameters (name,
location, required flag, type), the request body's and the success responses' schemas, with only the keywords that
state facts (type, format, enum, required, properties, items, additionalProperties, allOf/anyOf/oneOf, nullable,
bounds). Descriptions, summaries, examples, tags and vendor extensions are dropped. Only the component schemas those
operations reach are kept. The result is itself a valid OpenAPI 3.0 document, so the contract test reads it with the
same code as our own document and schemathesis can fuzz our API with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "docs" / "openapi.json"
OUTPUT = ROOT / "tests" / "reference" / "flexprice" / "contract.json"
PREFIX = "/api/v1"
METHODS = ("get", "put", "post", "delete", "patch")
SCALAR_KEYWORDS = (
    "type",
    "format",
    "enum",
    "required",
    "nullable",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
)
REF_PREFIX = "#/components/schemas/"


def normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def served_paths(ours: dict[str, Any]) -> set[str]:
    return {normalize(p[len(PREFIX) :]) for p in ours["paths"] if p.startswith(PREFIX)}


def schema_facts(node: Any) -> Any:
    """A schema with only the keywords that state facts of the interface."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    for key in SCALAR_KEYWORDS:
        if key in node:
            out[key] = node[key]
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: schema_facts(sub) for name, sub in sorted(node["properties"].items())}
    if "items" in node:
        out["items"] = schema_facts(node["items"])
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        out["additionalProperties"] = extra if isinstance(extra, bool) else schema_facts(extra)
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out[key] = [schema_facts(part) for part in node[key]]
    return out


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    out = {"name": param["name"], "in": param["in"], "required": bool(param.get("required", False))}
    out["schema"] = schema_facts(param.get("schema") or {"type": "string"})
    return out


def _operation(op: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.get("parameters"):
        out["parameters"] = [_parameter(p) for p in op["parameters"] if "$ref" not in p]
    media = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
    if media is not None:
        out["requestBody"] = {
            "required": bool(op["requestBody"].get("required", False)),
            "content": {"application/json": {"schema": schema_facts(media.get("schema") or {})}},
        }
    responses: dict[str, Any] = {}
    for code, response in sorted((op.get("responses") or {}).items()):
        entry: dict[str, Any] = {"description": ""}
        content = (response.get("content") or {}).get("application/json")
        if code.startswith("2") and content is not None and content.get("schema"):
            entry["content"] = {"application/json": {"schema": schema_facts(content["schema"])}}
        responses[code] = entry
    out["responses"] = responses
    if op.get("security") is not None:
        out["security"] = op["security"]
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def distil(theirs: dict[str, Any], ours: dict[str, Any], source_digest: str) -> dict[str, Any]:
    served = served_paths(ours)
    paths: dict[str, Any] = {}
    for path, item in sorted(theirs["paths"].items()):
        if normalize(path) not in served:
            continue
        ops = {method: _operation(op) for method, op in item.items() if method in METHODS}
        if ops:
            paths[path] = ops
    schemas_in = theirs.get("components", {}).get("schemas", {})
    reached: set[str] = set()
    _refs(paths, reached)
    pending = sorted(reached)
    while pending:
        name = pending.pop()
        more: set[str] = set()
        _refs(schemas_in.get(name, {}), more)
        for extra in sorted(more - reached):
            reached.add(extra)
            pending.append(extra)
    schemas = {name: schema_facts(schemas_in[name]) for name in sorted(reached) if name in schemas_in}
    security = {
        name: {k: v for k, v in scheme.items() if k in ("type", "name", "in")}
        for name, scheme in sorted(theirs.get("components", {}).get("securitySchemes", {}).items())
    }
    return {
        "openapi": theirs.get("openapi", "3.0.1"),
        "info": {
            "title": "Flexprice API: distilled contract of the operations on the paths we serve",
            "version": str(theirs.get("info", {}).get("version", "")),
            "x-source": "Flexprice's published OpenAPI spec (docs/swagger/swagger-3-0.json in Flexprice's repository)",
            "x-source-sha256": source_digest,
            "x-generated-by": "tools/flexprice_contract.py",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security},
    }


def render(contract: dict[str, Any]) -> str:
    return json.dumps(contract, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, required=True, help="Flexprice's full OpenAPI spec (JSON)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed contract is stale")
    args = parser.parse_args(argv)
    raw = args.spec.read_bytes()
    text = render(distil(json.loads(raw), json.loads(OURS.read_text()), hashlib.sha256(raw).hexdigest()))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run make flexprice-contract SPEC={args.spec}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text)} bytes, {len(json.loads(text)['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
