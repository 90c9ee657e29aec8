"""docs/openapi.json is generated from template.yaml and the handlers' models, and kept current."""

from __future__ import annotations

import json

import pytest

from devstack import template as tpl
from tools import openapi

DOCUMENT = openapi.OUTPUT


@pytest.fixture(scope="module")
def generated() -> dict:
    return openapi.build()


def test_the_committed_document_is_current(generated: dict) -> None:
    committed = DOCUMENT.read_text() if DOCUMENT.exists() else ""
    assert committed == openapi.render(generated), "docs/openapi.json is stale: run python tools/openapi.py"


def test_every_http_api_route_of_the_template_is_an_operation(generated: dict) -> None:
    template = tpl.load()
    routes = {
        (str(event["Properties"]["Path"]), str(event["Properties"]["Method"]).lower())
        for fn in tpl.functions(template).values()
        for event in fn.events.values()
        if event.get("Type") == "HttpApi"
    }
    documented = {(path, method) for path, item in generated["paths"].items() for method in item}
    assert routes and routes == documented


def test_operations_carry_auth_errors_models_and_statuses(generated: dict) -> None:
    assert generated["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    paths = generated["paths"]
    for item in paths.values():
        for op in item.values():
            for status in ("400", "401", "404", "409", "429", "500"):
                assert status in op["responses"], (op["operationId"], status)
    create = paths["/api/v1/customers"]["post"]
    assert "201" in create["responses"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CustomerCreate"}
    assert set(generated["components"]["schemas"]["CustomerCreate"]["required"]) == {"external_id", "name"}
    assert "204" in paths["/api/v1/customers/{id}"]["delete"]["responses"]
    assert "202" in paths["/api/v1/events"]["post"]["responses"]
    listing = paths["/api/v1/customers"]["get"]
    names = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert {"limit", "offset", "external_id"} <= names
    assert "ListResponse" in json.dumps(listing["responses"]["200"])
    envelope = generated["components"]["schemas"]["ErrorResponse"]
    assert envelope["required"] == ["code", "message", "http_status_code", "details"]
    assert [
        p["name"] for p in paths["/api/v1/payments/customers/{customer_id}/setup/intent"]["post"]["parameters"]
    ] == ["customer_id"]
