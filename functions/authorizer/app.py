"""HTTP API Lambda REQUEST authorizer (simple responses): ``x-api-key`` → tenant and environment.

Every request is let through to its function with either the tenant in the context or the reason the key
was refused; the shared API wrapper answers 401 with the error envelope in the latter case. This keeps the
envelope on 401s while API Gateway caches the result per key.
"""

from typing import Any

from billing.observability import logger
from billing.services.apikeys import authorize
from billing.store.lean import entities_reader


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    result = authorize(entities_reader(), headers.get("x-api-key"))
    if "auth_error" in result:
        logger.info("API key refused", extra={"reason": result["auth_error"]})
    return {"isAuthorized": True, "context": result}
