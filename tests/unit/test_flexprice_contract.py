"""The distiller of Flexprice's spec keeps the interface's facts for the paths we serve, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools import flexprice_contract as fc

ROOT = Path(__file__).resolve().parents[2]

THEIRS: dict[str, Any] = {
    "openapi": "3.0.1",
    "info": {"title": "T", "description": "prose", "version": "1.0"},
    "paths": {
        "/widgets/{widget_id}": {
            "get": {
                "summary": "Get a widget",
                "description": "Long prose",
                "tags": ["Widgets"],
                "parameters": [
                    {
                        "name": "widget_id",
                        "in": "path",
                        "required": True,
                        "description": "x",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}},
                    },
                    "404": {
                        "description": "Nope",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Err"}}},
                    },
                },
            },
        },
        "/gadgets": {"post": {"responses": {"201": {"description": "Created"}}}},
    },
    "components": {
        "schemas": {
            "Widget": {
                "type": "object",
                "description": "prose",
                "required": ["kind"],
                "x-speakeasy-name-override": "W",
                "properties": {
                    "kind": {"type": "string", "enum": ["A", "B"], "x-enum-varnames": ["KA", "KB"], "example": "A"},
                    "description": {"type": "string", "description": "a field named like a keyword"},
                    "parts": {"type": "array", "items": {"$ref": "#/components/schemas/Part"}},
                },
            },
            "Part": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0, "default": 3}}},
            "Err": {"type": "object", "properties": {"message": {"type": "string"}}},
            "Unused": {"type": "object"},
        },
        "securitySchemes": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "p"}},
    },
}
OURS = {"paths": {"/api/v1/widgets/{id}": {"get": {}}, "/api/v1/other": {"get": {}}}}


def test_keeps_the_served_operations_with_their_facts_only() -> None:
    contract = fc.distil(THEIRS, OURS, "abc")
    assert list(contract["paths"]) == ["/widgets/{widget_id}"]
    op = contract["paths"]["/widgets/{widget_id}"]["get"]
    assert op["parameters"] == [{"name": "widget_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert sorted(op["responses"]) == ["200", "404"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Widget"}
    assert "content" not in op["responses"]["404"]  # error bodies are not part of the contract
    assert "summary" not in op and "tags" not in op and "description" not in op
    widget = contract["components"]["schemas"]["Widget"]
    assert widget == {
        "type": "object",
        "required": ["kind"],
        "properties": {
            "description": {"type": "string"},
            "kind": {"type": "string", "enum": ["A", "B"]},
            "parts": {"type": "array", "items": {"$ref": "#/components/schemas/Part"}},
        },
    }
    assert contract["components"]["schemas"]["Part"] == {
        "type": "object",
        "properties": {"size": {"type": "integer", "minimum": 0}},
    }
    assert "Unused" not in contract["components"]["schemas"] and "Err" not in contract["components"]["schemas"]
    assert contract["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    assert contract["info"]["x-source-sha256"] == "abc"


def test_the_committed_contract_holds_no_prose_and_covers_our_paths() -> None:
    contract = json.loads((ROOT / "tests" / "reference" / "flexprice" / "contract.json").read_text())
    ours = json.loads((ROOT / "docs" / "openapi.json").read_text())
    prose: list[str] = []

    def walk(node: Any, at: str, in_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                text_key = key in ("summary", "example", "examples", "tags") or key.startswith("x-")
                if not in_properties and text_key and at != ".info":
                    prose.append(f"{at}.{key}")
                if not in_properties and key == "description" and value != "":
                    prose.append(f"{at}.{key}")
                walk(value, f"{at}.{key}", key == "properties" and not in_properties)
        elif isinstance(node, list):
            for item in node:
                walk(item, at)

    walk(contract, "")
    assert not prose
    served = fc.served_paths(ours)
    assert contract["paths"] and {fc.normalize(p) for p in contract["paths"]} <= served
