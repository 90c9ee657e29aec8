"""Invoke API functions in-process with faithful HTTP API v2 events (the integration tier)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from devstack import template as tpl
from devstack.events import LambdaContext, http_api_event, route_regex
from devstack.loader import load_handler


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str


@cache
def routes() -> list[tuple[Route, Any]]:
    out = []
    for fn in tpl.functions(tpl.load()).values():
        for ev in fn.events.values():
            if ev.get("Type") == "HttpApi":
                props = ev["Properties"]
                out.append((Route(fn.logical_id, props["Method"].upper(), props["Path"]), route_regex(props["Path"])))
    return out


@cache
def _function(logical_id: str) -> tpl.Function:
    return tpl.functions(tpl.load())[logical_id]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text) if self.text else None


def call(
    method: str,
    path: str,
    *,
    tenant: tuple[str, str] | None,
    body: Any = None,
    raw_body: bytes | None = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    auth: dict[str, str] | None = None,
    authorizer: dict[str, str] | None = None,
) -> Response:
    """Route ``method path`` as API Gateway would and invoke the function's handler.

    ``tenant`` gives the authorizer's context for a valid key of that tenant (``auth`` adds to it); ``authorizer``
    replaces it whole (for example the context of an authorizer that could not read the key).
    """
    method = method.upper()
    for route, regex in routes():
        match = regex.match(path)
        if route.method == method and match:
            break
    else:
        raise AssertionError(f"no route for {method} {path}")
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    context = None
    if tenant is not None:
        # One key per tenant, as in a deployment: each tenant's test traffic has its own request counter.
        context = {"tenant_id": tenant[0], "environment_id": tenant[1], "key_id": f"key_{tenant[0]}", **(auth or {})}
    event = http_api_event(
        method,
        path,
        route_key=f"{method} {route.path}",
        path_parameters=match.groupdict() or None,
        raw_query=urlencode(query or {}),
        headers={"content-type": "application/json", **(headers or {})},
        body=data,
        authorizer_context=authorizer or (context if context is not None else {"auth_error": "missing key"}),
    )
    fn = _function(route.function)
    result = load_handler(fn.module_path, fn.attribute)(event, LambdaContext(route.function))
    return Response(result["statusCode"], result.get("headers") or {}, result.get("body") or "")
