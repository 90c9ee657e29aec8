"""Per-API-key request limits: a fixed-window counter per key, answered 429 with ``Retry-After`` when spent.

The HTTP API's stage throttling protects the whole deployment; this protects tenants from each other. Each
authenticated request adds one to the counter of its key's current window with a single conditional
``UpdateItem`` on the rate-limit table (``PK = key#<key_id>``, ``SK = <window start, epoch seconds>``); the
condition refuses the increment once the window's limit is reached, so a refused request costs no count. Items
expire through the table's TTL.

The limit is the key's own ``rate_limit`` when the key has one (the authorizer passes it on), otherwise the
deployment's ``API_KEY_RATE_LIMIT``; 0 means unlimited. If the counter cannot be written for a reason other than
the limit (a missing table, a denied permission, a server error), the request goes ahead: a limiter fault must
not become an API outage. Only an unreachable DynamoDB is passed on (503), since the request would meet it next.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing import wiring
from billing.errors import TooManyRequests
from billing.observability import logger, metrics
from billing.settings import get_settings
from billing.store.dynamo import ConditionFailed


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset: int  # epoch seconds at which the window ends

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def limit_of(authorizer: Mapping[str, Any]) -> int:
    """The key's own limit from the authorizer's context, else the deployment default."""
    own = authorizer.get("rate_limit")
    if own not in (None, ""):
        try:
            return max(0, int(str(own)))
        except ValueError:
            logger.warning("ignoring a malformed per-key rate limit", extra={"rate_limit": str(own)})
    return get_settings().api_key_rate_limit


def consume(key_id: str, limit: int, *, now: float | None = None) -> Quota | None:
    """Count one request for ``key_id``; raise ``TooManyRequests`` when its window is spent.

    Returns None when no limit applies (limit 0, no key id, or no rate-limit table configured).
    """
    table = wiring.rate_limits()
    if limit <= 0 or not key_id or table is None:
        return None
    window = get_settings().api_key_rate_window_seconds
    now = time.time() if now is None else now
    start = int(now // window) * window
    reset = start + window
    try:
        item = table.update(
            f"key#{key_id}",
            str(start),
            "ADD #n :one SET expires_at = if_not_exists(expires_at, :expires)",
            condition="attribute_not_exists(#n) OR #n < :limit",
            names={"#n": "n"},
            values={":one": 1, ":limit": limit, ":expires": reset + window},
        )
    except ConditionFailed:
        retry_after = max(1, math.ceil(reset - now))
        metrics.add_metric(name="ApiKeyRateLimited", unit="Count", value=1)
        logger.info("API key rate limit reached", extra={"key_id": key_id, "limit": limit, "window_seconds": window})
        raise TooManyRequests(
            f"this API key may make {limit} requests per {window} seconds; retry after {retry_after} seconds",
            {"retry_after": retry_after, "limit": limit, "window_seconds": window},
        ) from None
    except TooManyRequests:
        raise
    except Exception as exc:  # fail open: see the module docstring
        if wiring.unreachable(exc):
            raise  # DynamoDB cannot be reached: the request itself would fail the same way after the same wait
        metrics.add_metric(name="RateLimitUnavailable", unit="Count", value=1)
        logger.warning("rate limit not checked", extra={"key_id": key_id, "error": type(exc).__name__})
        return None
    count = int(item.get("n", 0))
    return Quota(limit=limit, remaining=max(0, limit - count), reset=reset)
