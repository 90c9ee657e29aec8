"""The edge of every API function: event parsing, tenancy, validation, the error map, JSON responses.

A function's ``app.py`` is one decorated function::

    @api(status=201, body=FeatureCreate)
    def lambda_handler(req: Request) -> dict: ...

The decorator turns it into a Lambda handler for API Gateway HTTP API (payload format 2.0).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from billing import jsontext, ratelimit, wiring
from billing.errors import BillingError, PayloadTooLarge, ServiceUnavailable, Unauthorized, ValidationFailed
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services.apikeys import AUTH_UNAVAILABLE, authorize
from billing.settings import get_settings

M = TypeVar("M", bound=BaseModel)

JSON_HEADERS = {"Content-Type": "application/json"}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Usage values are JSON numbers; money is rendered as strings before it gets here.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"))


def response(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})}}
    out["body"] = "" if body is None else dumps(body)
    return out


def error_response(err: BillingError) -> dict[str, Any]:
    headers = {}
    retry_after = err.details.get("retry_after")
    if err.http_status in (429, 503) and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return response(err.http_status, err.envelope(), headers)


def validation_error(exc: PydanticValidationError, prefix: tuple[str | int, ...] = ()) -> ValidationFailed:
    problems = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *[p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]]
        field = ".".join(str(p) for p in loc) or "body"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append({"field": field, "message": message})
    first = problems[0] if problems else {"field": "body", "message": "invalid"}
    return ValidationFailed(f"invalid request: {first['field']}: {first['message']}", {"errors": problems})


def parse_model[M: BaseModel](model: type[M], data: Any, prefix: tuple[str | int, ...] = ()) -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise validation_error(exc, prefix) from None


class Request:
    """What a handler sees of an HTTP API v2 event."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.event = event
        ctx = event.get("requestContext") or {}
        self.method: str = (ctx.get("http") or {}).get("method", "GET")
        self.path: str = event.get("rawPath", "")
        self.path_params: dict[str, str] = dict(event.get("pathParameters") or {})
        self.query: dict[str, str] = dict(event.get("queryStringParameters") or {})
        self.headers: dict[str, str] = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        self.request_id: str = ctx.get("requestId", "")
        self._scope: Scope | None = None
        self._authorizer: Mapping[str, Any] | None = None
        self.body: Any = None
        self.quota: ratelimit.Quota | None = None

    @property
    def authorizer(self) -> Mapping[str, Any]:
        """The context the API key authorizer returned for this request (checked again here if it could not)."""
        if self._authorizer is None:
            self._authorizer = authorizer_context(self.event)
            if AUTH_UNAVAILABLE in self._authorizer:
                self._authorizer = recheck_key(self.headers.get("x-api-key"))
        return self._authorizer

    @property
    def key_id(self) -> str:
        return str(self.authorizer.get("key_id") or "")

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self._scope = scope_from(self.authorizer)
        return self._scope

    def raw_body(self) -> bytes:
        raw = self.event.get("body")
        if raw is None:
            return b""
        if self.event.get("isBase64Encoded"):
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationFailed("request body is not valid base64") from None
        else:
            data = raw.encode("utf-8")
        if len(data) > get_settings().max_body_bytes:
            raise PayloadTooLarge(
                f"request body exceeds {get_settings().max_body_bytes} bytes",
                {"limit_bytes": get_settings().max_body_bytes},
            )
        return data

    def json(self) -> Any:
        data = self.raw_body()
        if not data.strip():
            raise ValidationFailed("request body is required")
        try:
            return jsontext.loads(data)
        except jsontext.BadJson as exc:
            raise ValidationFailed(
                f"request body is not valid JSON: {exc}",
                {"reason": "malformed_json", "errors": [{"field": "body", "message": str(exc)}]},
            ) from None

    def model(self, model: type[M]) -> M:
        data = self.json()
        if not isinstance(data, dict):
            raise ValidationFailed("request body must be a JSON object")
        return parse_model(model, data)

    def query_model(self, model: type[M]) -> M:
        return parse_model(model, self.query, ("query",))

    def param(self, name: str) -> str:
        value = self.path_params.get(name)
        if not value:
            raise ValidationFailed(f"path parameter {name} is required")
        return value


def authorizer_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    auth: Mapping[str, Any] = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    return auth


def recheck_key(key: str | None) -> Mapping[str, Any]:
    """The authorizer's answer for ``key``, read by this function; storage faults answer 503 with Retry-After."""
    return authorize(wiring.entities(), key)


def scope_of(event: Mapping[str, Any]) -> Scope:
    """Tenant and environment resolved by the authorizer; a request without them is refused."""
    return scope_from(authorizer_context(event))


def scope_from(auth: Mapping[str, Any]) -> Scope:
    tenant, environment = auth.get("tenant_id"), auth.get("environment_id")
    if not tenant or not environment:
        raise Unauthorized(auth.get("auth_error") or "a valid x-api-key header is required")
    return Scope(str(tenant), str(environment))


def api(
    *,
    status: int = 200,
    body: type[BaseModel] | None = None,
    authenticated: bool = True,
) -> Callable[[Callable[[Request], Any]], Callable[[dict[str, Any], Any], dict[str, Any]]]:
    """Wrap a request function into a Lambda handler with the shared decorators and error map."""

    def decorate(fn: Callable[[Request], Any]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        @functools.wraps(fn)
        @metrics.log_metrics(raise_on_empty_metrics=False)
        @logger.inject_lambda_context(clear_state=True)
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            req = Request(event)
            out = respond(req)
            if req.quota is not None:
                out["headers"] = {**req.quota.headers(), **(out.get("headers") or {})}
            return out

        def respond(req: Request) -> dict[str, Any]:
            try:
                if authenticated:
                    scope = req.scope
                    logger.append_keys(tenant_id=scope.tenant_id, environment_id=scope.environment_id)
                    req.quota = ratelimit.consume(req.key_id, ratelimit.limit_of(req.authorizer))
                if body is not None:
                    req.body = req.model(body)
                result = fn(req)
            except BillingError as err:
                if err.http_status >= 500:
                    logger.warning("request failed", extra={"code": err.code, "status": err.http_status})
                return error_response(err)
            except Exception as exc:
                # An AWS endpoint that cannot be reached or does not answer in time (after botocore's retries) is
                # an outage the client may wait out, not a fault of the product.
                if wiring.unreachable(exc):
                    logger.warning("AWS service unreachable", extra={"error": type(exc).__name__})
                    return error_response(
                        ServiceUnavailable("a backing service is unreachable; retry shortly", {"retry_after": 2})
                    )
                logger.exception("unhandled error")
                return error_response(BillingError("internal error"))
            if isinstance(result, dict) and "statusCode" in result:
                return result
            return response(status, result)

        return handler

    return decorate
