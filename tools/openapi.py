"""Generate the API's OpenAPI document from template.yaml and the handlers' pydantic models.

    python tools/openapi.py            # write docs/openapi.json
    python tools/openapi.py --check    # exit 1 when docs/openapi.json is stale

Every ``HttpApi`` route of the template is one operation. Its function's ``app.py`` is read (AST, not imported):

- request body: ``@api(body=Model)`` (required) or ``req.model(Model)`` in the body (optional body);
- query parameters: ``req.query_model(Model)`` (one parameter per field) and ``req.query.get("name")``;
- path parameters: the ``{name}`` segments of the route;
- success status: ``@api(status=N)`` (200 by default), or ``response(N)`` returned by the handler;
- response: the list envelope when the handler pages (``page``/``list_page``/``page_of``), an object with the
  fields of the schema module's ``RESPONSE_FIELDS`` when the handler renders with that module's ``*_out``,
  otherwise a JSON object.

Models are resolved through the handler's ``from billing.schemas... import`` lines, so a new endpoint is picked up
as soon as its function is in the template.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "layers" / "billing", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pydantic import BaseModel  # noqa: E402
from pydantic.json_schema import models_json_schema  # noqa: E402

from devstack import template as tpl  # noqa: E402

OUTPUT = ROOT / "docs" / "openapi.json"
API_PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
ERROR_CODES = [
    "validation_error",
    "invalid_operation",
    "unauthorized",
    "permission_denied",
    "not_found",
    "method_not_allowed",
    "already_exists",
    "version_conflict",
    "payload_too_large",
    "too_many_requests",
    "internal_error",
    "service_unavailable",
]
ERROR_STATUSES = {
    "400": "Invalid request (validation_error, invalid_operation)",
    "401": "Missing or invalid x-api-key",
    "404": "Not found",
    "409": "Conflict (already_exists, version_conflict)",
    "413": "Request body too large",
    "429": "Too many requests (see Retry-After)",
    "500": "Internal error",
    "503": "Service unavailable (see Retry-After)",
}
PAGING_CALLS = {"page", "list_page", "page_of"}


@dataclass
class Handler:
    """What the AST of one function's app.py says about its HTTP contract."""

    summary: str = ""
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query_model: type[BaseModel] | None = None
    query_names: list[str] = field(default_factory=list)
    pages: bool = False
    response_fields: tuple[str, ...] | None = None


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Local name → (module, attribute) for every ``from billing... import`` of the module."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("billing"):
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def _resolve(name: ast.expr, imports: dict[str, tuple[str, str]]) -> Any:
    if not isinstance(name, ast.Name) or name.id not in imports:
        raise ValueError(f"cannot resolve {ast.unparse(name)}: import it by name from billing.schemas")
    module, attribute = imports[name.id]
    return getattr(importlib.import_module(module), attribute)


def _is_req_call(node: ast.Call, method: str) -> bool:
    func = node.func
    return isinstance(func, ast.Attribute) and func.attr == method and isinstance(func.value, ast.Name)


def read_handler(path: Path) -> Handler:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    imports = _imports(tree)
    handler = Handler(
        summary=(ast.get_docstring(tree) or "").strip().splitlines()[0] if ast.get_docstring(tree) else ""
    )
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "api":
                for kw in deco.keywords:
                    if kw.arg == "status" and isinstance(kw.value, ast.Constant):
                        handler.status = int(kw.value.value)
                    elif kw.arg == "body" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None):
                        handler.body = _resolve(kw.value, imports)
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Call):
                continue
            func = inner.func
            if _is_req_call(inner, "query_model") and inner.args:
                handler.query_model = _resolve(inner.args[0], imports)
            elif _is_req_call(inner, "model") and inner.args and handler.body is None:
                handler.body = _resolve(inner.args[0], imports)
                handler.body_required = False
            elif (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and isinstance(func.value, ast.Attribute)
                and func.value.attr == "query"
                and inner.args
                and isinstance(inner.args[0], ast.Constant)
            ):
                handler.query_names.append(str(inner.args[0].value))
            elif isinstance(func, ast.Name) and func.id == "response" and inner.args:
                first = inner.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, int):
                    handler.status = first.value
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in PAGING_CALLS:
                handler.pages = True
            for arg in [func, *inner.args]:
                if isinstance(arg, ast.Name) and arg.id.endswith("_out") and arg.id in imports:
                    module = importlib.import_module(imports[arg.id][0])
                    fields = getattr(module, "RESPONSE_FIELDS", None)
                    if fields and handler.response_fields is None:
                        handler.response_fields = tuple(fields)
    return handler


@dataclass
class Operation:
    path: str
    method: str
    function: str
    handler: Handler


def operations(template_path: Path = tpl.TEMPLATE) -> list[Operation]:
    template = tpl.load(template_path)
    out = []
    for logical, fn in tpl.functions(template, root=template_path.parent).items():
        for event in fn.events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            method = str(props.get("Method", "ANY")).lower()
            path = str(props.get("Path", ""))
            if not path.startswith("/") or method == "any":
                continue
            out.append(Operation(path, method, logical, read_handler(fn.module_path)))
    return sorted(out, key=lambda op: (op.path, op.method))


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: drop ``null`` from an optional field's schema."""
    schema = copy.deepcopy(schema)
    options = schema.get("anyOf")
    if options:
        kept = [s for s in options if s.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **rest}
        schema["anyOf"] = kept
    return schema


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in (schema.get("$defs") or {}).items():
        defs.setdefault(name, definition)
    required = set(schema.get("required") or [])
    params = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = _strip_null(prop)
        if prop.get("default", 0) is None:
            del prop["default"]
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("type") == "array":
            param["style"] = "form"
            param["explode"] = False
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    return params


RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests this API key may make in the current window",
    "X-RateLimit-Remaining": "Requests left in the current window",
    "X-RateLimit-Reset": "When the current window ends (epoch seconds)",
}


def _headers(names: dict[str, str]) -> dict[str, Any]:
    return {
        name: {"description": text, "required": False, "schema": {"type": "integer"}} for name, text in names.items()
    }


def _error_response(description: str, status: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if status in ("429", "503"):
        out["headers"] = _headers({"Retry-After": "Seconds to wait before retrying"})
    return {
        **out,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [{"$ref": REF.format(model="ErrorResponse")}, {"$ref": REF.format(model="GatewayError")}]
                }
            }
        },
    }


def _shared_components() -> dict[str, Any]:
    return {
        "ErrorResponse": {
            "type": "object",
            "description": "The error envelope of every error the API's functions answer.",
            "properties": {
                "code": {"type": "string", "enum": ERROR_CODES},
                "message": {"type": "string"},
                "http_status_code": {"type": "integer"},
                "details": {"type": "object"},
            },
            "required": ["code", "message", "http_status_code", "details"],
        },
        "GatewayError": {
            "type": "object",
            "description": "API Gateway's own answer (no x-api-key header, unknown route, throttling).",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
        "Pagination": {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1},
                "offset": {"type": "integer", "minimum": 0},
            },
            "required": ["total", "limit", "offset"],
        },
        "ListResponse": {
            "type": "object",
            "description": "The list envelope.",
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "pagination": {"$ref": REF.format(model="Pagination")},
            },
            "required": ["items", "pagination"],
        },
        "Object": {"type": "object", "description": "A JSON object (the resource; see the endpoint's summary)."},
    }


def _resource_schema(fields: tuple[str, ...] | None) -> dict[str, Any]:
    if not fields:
        return {"$ref": REF.format(model="Object")}
    return {"type": "object", "properties": {name: {} for name in fields}}


def _success(op: Operation) -> dict[str, Any]:
    handler = op.handler
    headers = {"headers": _headers(RATE_LIMIT_HEADERS)}
    if handler.status == 204:
        return {"description": "No content", **headers}
    if handler.pages:
        item = _resource_schema(handler.response_fields)
        schema: dict[str, Any] = {"$ref": REF.format(model="ListResponse")}
        if handler.response_fields:
            schema = {
                "allOf": [
                    {"$ref": REF.format(model="ListResponse")},
                    {"type": "object", "properties": {"items": {"type": "array", "items": item}}},
                ]
            }
    else:
        schema = _resource_schema(handler.response_fields)
    return {"description": "Success", **headers, "content": {"application/json": {"schema": schema}}}


def _operation_id(function: str) -> str:
    name = function.removesuffix("Function")
    return name[0].lower() + name[1:]


def build(template_path: Path = tpl.TEMPLATE) -> dict[str, Any]:
    ops = operations(template_path)
    bodies = sorted({op.handler.body for op in ops if op.handler.body is not None}, key=lambda m: m.__name__)
    mapping, top = models_json_schema([(model, "validation") for model in bodies], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs") or {})
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        handler = op.handler
        operation: dict[str, Any] = {
            "operationId": _operation_id(op.function),
            "summary": handler.summary,
            "tags": [op.path.removeprefix(API_PREFIX).strip("/").split("/")[0]],
        }
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in re.findall(r"\{([^}+]+)\+?\}", op.path)
        ]
        if handler.query_model is not None:
            params += _query_parameters(handler.query_model, schemas)
        known = {p["name"] for p in params}
        for name in handler.query_names:
            if name not in known:
                params.append({"name": name, "in": "query", "required": False, "schema": {"type": "string"}})
                known.add(name)
        if params:
            operation["parameters"] = params
        if handler.body is not None:
            operation["requestBody"] = {
                "required": handler.body_required,
                "content": {"application/json": {"schema": mapping[(handler.body, "validation")]}},
            }
        responses: dict[str, Any] = {str(handler.status): _success(op)}
        for status, description in ERROR_STATUSES.items():
            responses[status] = _error_response(description, status)
        operation["responses"] = responses
        paths.setdefault(op.path, {})[op.method] = operation
    for name, schema in _shared_components().items():
        schemas[name] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Billing API",
            "version": "1.0.0",
            "description": (
                "Usage-based billing, wire-compatible with Flexprice's API. Generated by tools/openapi.py from "
                "template.yaml and the handlers' request models; do not edit by hand."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKeyAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": dict(sorted(schemas.items())),
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when the committed document is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python tools/openapi.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
