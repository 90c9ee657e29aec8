"""HTTP API Lambda REQUEST authorizer (simple responses): ``x-api-key`` → tenant and environment.

Every request is let through to its function with either the tenant in the context or the reason the key
was refused; the shared API wrapper answers 401 with the error envelope in the latter case. This keeps the
envelope on 401s while API Gateway caches the result per key. When the key cannot be read (storage faults),
the context says so and the function checks the key itself, answering 503 with Retry-After if it cannot either:
an authorizer error would be API Gateway's bare 500.
"""

from typing import Any

from billing.observability import logger
from billing.services.apikeys import AUTH_UNAVAILABLE, authorize
from billing.store.lean import entities_reader


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        result = authorize(entities_reader(), headers.get("x-api-key"))
    except Exception as exc:  # any fault: the function decides with its own read (billing.http.recheck_key)
        logger.warning("API key not checked", extra={"error": type(exc).__name__})
        return {"isAuthorized": True, "context": {AUTH_UNAVAILABLE: "the API key could not be checked"}}
    if "auth_error" in result:
        logger.info("API key refused", extra={"reason": result["auth_error"]})
    return {"isAuthorized": True, "context": result}
