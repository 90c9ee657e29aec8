"""API Gateway HTTP API and Lambda function URLs in front of in-process handlers.

``ApiGateway.handle`` and ``FunctionUrls.handle`` take a parsed HTTP request and return
``(status, headers, body)``; ``devstack.server`` puts them on sockets.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from devstack.events import authorizer_event, function_url_event, http_api_event, route_regex
from devstack.stack import AuthorizerSpec, FunctionUrl, RouteSpec

log = logging.getLogger("devstack")

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes]
Invoke = Callable[[str, Any], Any]


def gateway_message(status: int, message: str, request_id: str = "") -> Reply:
    """A response API Gateway itself produces (``{"message": ...}``), not the function."""
    headers = [("Content-Type", "application/json")]
    if request_id:
        headers.append(("apigw-requestid", request_id))
    return status, headers, json.dumps({"message": message}, separators=(",", ":")).encode()


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    source_ip: str = "127.0.0.1"


# ------------------------------------------------------------------------------------------------------
# Routing
# ------------------------------------------------------------------------------------------------------


@dataclass
class Route:
    spec: RouteSpec
    regex: re.Pattern[str] = field(init=False)
    rank: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.regex = route_regex(self.spec.path)
        self.rank = specificity(self.spec.path, self.spec.method)

    @property
    def route_key(self) -> str:
        return f"{self.spec.method} {self.spec.path}"


def specificity(path: str, method: str) -> tuple[int, ...]:
    """Sort key of a route: higher is more specific.

    API Gateway prefers a full match, then the longest literal match, then path variables, then greedy
    variables, and a route's own method over ``ANY``.
    """
    ranks = []
    for segment in path.strip("/").split("/"):
        if segment.endswith("+}"):
            ranks.append(0)
        elif "{" in segment:
            ranks.append(1)
        else:
            ranks.append(2)
    return (*ranks, 0 if method == "ANY" else 1)


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would pick for ``method path`` and its (decoded) path parameters."""
    found = []
    for route in routes:
        if route.spec.method not in (method, "ANY"):
            continue
        m = route.regex.match(path)
        if m:
            found.append((route, {k: unquote(v) for k, v in m.groupdict().items()}))
    if not found:
        return None
    return max(found, key=lambda pair: pair[0].rank)


# ------------------------------------------------------------------------------------------------------
# Responses
# ------------------------------------------------------------------------------------------------------


class BadResponse(Exception):
    """The function's result cannot be turned into an HTTP response."""


def map_response(result: Any) -> Reply:
    """Map a payload 2.0 function result to HTTP the way API Gateway and function URLs do."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Format inference: anything else is a 200 JSON body.
        return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise BadResponse(f"statusCode {result['statusCode']!r} is not an integer") from None
    if not 100 <= status <= 599:
        raise BadResponse(f"statusCode {status} is out of range")
    headers: Headers = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), value if isinstance(value, str) else json.dumps(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            raise BadResponse("body is not valid base64") from None
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return status, headers, data


# ------------------------------------------------------------------------------------------------------
# Authorizer
# ------------------------------------------------------------------------------------------------------


class Authorizer:
    """A Lambda REQUEST authorizer, its identity sources and its result cache."""

    def __init__(self, spec: AuthorizerSpec, invoke: Invoke, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.invoke = invoke
        self.clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, bool, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def identity(self, request: Request) -> tuple[str, ...] | None:
        """The identity source values, or ``None`` if one is missing or empty (API Gateway answers 401)."""
        values = [request.headers.get(h, "") for h in self.spec.identity_headers]
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        values += [query.get(q, "") for q in self.spec.identity_queries]
        return tuple(values) if all(values) else None

    def decide(
        self, request: Request, route: Route, params: dict[str, str], identity: tuple[str, ...]
    ) -> tuple[bool, dict[str, Any]]:
        """(allowed, context), from the cache while the result is younger than ``ReauthorizeEvery``."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(identity)
        if cached and cached[0] > now:
            return cached[1], cached[2]
        event = authorizer_event(route.route_key, request.path, request.headers, request.method)
        event["rawQueryString"] = request.query
        if request.query:
            event["queryStringParameters"] = dict(parse_qsl(request.query, keep_blank_values=True))
        if params:
            event["pathParameters"] = params
        event["identitySource"] = list(identity)
        result = self.invoke(self.spec.function, event)
        allowed, context = self._read(result)
        if self.spec.ttl_seconds > 0:
            with self._lock:
                self._cache[identity] = (now + self.spec.ttl_seconds, allowed, context)
        return allowed, context

    def _read(self, result: Any) -> tuple[bool, dict[str, Any]]:
        if not isinstance(result, dict):
            raise BadResponse("authorizer returned a non-object")
        context = result.get("context") or {}
        if self.spec.simple_responses:
            if not isinstance(result.get("isAuthorized"), bool):
                raise BadResponse("authorizer response has no boolean isAuthorized")
            return result["isAuthorized"], context
        statements = ((result.get("policyDocument") or {}).get("Statement")) or []
        allowed = any(s.get("Effect") == "Allow" for s in statements) and not any(
            s.get("Effect") == "Deny" for s in statements
        )
        return allowed, context


# ------------------------------------------------------------------------------------------------------
# HTTP API
# ------------------------------------------------------------------------------------------------------


def _with_forwarding(request: Request, port: int) -> dict[str, str]:
    headers = dict(request.headers)
    headers["x-forwarded-for"] = request.source_ip
    headers["x-forwarded-port"] = str(port)
    headers["x-forwarded-proto"] = "http"
    return headers


class ApiGateway:
    """Every ``HttpApi`` route of the template behind its authorizer, with payload 2.0 events."""

    def __init__(self, routes: list[RouteSpec], invoke: Invoke, port: int) -> None:
        self.invoke = invoke
        self.port = port
        self.routes = [Route(r) for r in routes]
        self.authorizers: dict[tuple[str, str], Authorizer] = {}
        for r in routes:
            if r.authorizer is not None:
                key = (r.api, r.authorizer.name)
                self.authorizers.setdefault(key, Authorizer(r.authorizer, invoke))

    def handle(self, request: Request) -> tuple[Reply, str | None]:
        """The HTTP response and the function that produced it (``None`` if API Gateway answered)."""
        request_id = base64.b64encode(secrets.token_bytes(10)).decode()
        if len(request.body) > API_GATEWAY_MAX_BODY:
            return gateway_message(413, "Request Entity Too Large", request_id), None
        matched = match_route(self.routes, request.method, request.path)
        if matched is None:
            return gateway_message(404, "Not Found", request_id), None
        route, params = matched
        context: dict[str, Any] | None = None
        if route.spec.authorizer is not None:
            authorizer = self.authorizers[(route.spec.api, route.spec.authorizer.name)]
            identity = authorizer.identity(request)
            if identity is None:
                return gateway_message(401, "Unauthorized", request_id), None
            try:
                allowed, context = authorizer.decide(request, route, params, identity)
            except Exception:
                log.error("authorizer %s failed:\n%s", authorizer.spec.function, traceback.format_exc())
                return gateway_message(500, "Internal Server Error", request_id), None
            if not allowed:
                return gateway_message(403, "Forbidden", request_id), None
        event = http_api_event(
            request.method,
            request.path,
            route_key=route.route_key,
            path_parameters=params or None,
            raw_query=request.query,
            headers=_with_forwarding(request, self.port),
            body=request.body or None,
            authorizer_context=context,
            source_ip=request.source_ip,
        )
        event["requestContext"]["requestId"] = request_id
        try:
            status, headers, body = map_response(self.invoke(route.spec.function, event))
        except BadResponse as exc:
            log.error("%s returned a malformed response: %s", route.spec.function, exc)
            return gateway_message(500, "Internal Server Error", request_id), route.spec.function
        except Exception:
            log.error("%s raised:\n%s", route.spec.function, traceback.format_exc())
            return gateway_message(500, "Internal Server Error", request_id), route.spec.function
        headers.append(("apigw-requestid", request_id))
        return (status, headers, body), route.spec.function


# ------------------------------------------------------------------------------------------------------
# Function URLs
# ------------------------------------------------------------------------------------------------------


FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024


class FunctionUrls:
    """Function URLs on one port. With more than one, the first path segment names the function."""

    def __init__(self, urls: list[FunctionUrl], invoke: Invoke, port: int) -> None:
        self.urls = {u.function: u for u in urls}
        self.invoke = invoke
        self.port = port

    def target(self, path: str) -> tuple[str, str] | None:
        """(function, path the function sees) for a request path."""
        if len(self.urls) == 1:
            return next(iter(self.urls)), path
        first, _, rest = path.lstrip("/").partition("/")
        if first in self.urls:
            return first, "/" + rest
        return None

    def handle(self, request: Request) -> tuple[Reply, str | None]:
        target = self.target(request.path)
        if target is None:
            return gateway_message(404, "Not Found"), None
        function, path = target
        if len(request.body) > FUNCTION_URL_MAX_BODY:
            return gateway_message(413, "Request Entity Too Large"), None
        event = function_url_event(
            request.method, path, request.query, _with_forwarding(request, self.port), request.body or None
        )
        event["requestContext"]["domainPrefix"] = function.lower()
        event["requestContext"]["domainName"] = f"127.0.0.1:{self.port}"
        try:
            return map_response(self.invoke(function, event)), function
        except Exception:
            log.error("%s raised:\n%s", function, traceback.format_exc())
            return (502, [("Content-Type", "text/plain")], b"Internal Server Error"), function
