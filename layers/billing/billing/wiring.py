"""AWS clients and adapters, built once per execution environment and reused while warm.

Only this module (and ``billing.store``) imports the AWS SDK. It uses botocore directly: boto3's session layer
adds ~120 ms of import time per cold start and nothing the product needs.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ConnectionError as AwsConnectionError
from botocore.exceptions import HTTPClientError
from botocore.session import Session, get_session

from billing.settings import get_settings
from billing.store import lean
from billing.store.dynamo import Table

# botocore's standard retry mode waits up to 2**(n-1) seconds (full jitter) before retry n.
MAX_BACKOFF_BASE_SECONDS = 1.0


def _config() -> Config:
    settings = get_settings()
    return Config(
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"total_max_attempts": settings.aws_max_attempts, "mode": "standard"},
    )


def worst_case_seconds(attempts: int, connect_timeout: float, read_timeout: float) -> float:
    """The longest one SDK call can take before it gives up: every try timing out, every wait at its maximum."""
    waits = sum(MAX_BACKOFF_BASE_SECONDS * float(2**i) for i in range(attempts - 1))
    return attempts * (connect_timeout + read_timeout) + waits


def unreachable(exc: BaseException) -> bool:
    """An AWS endpoint that could not be reached or did not answer in time, after the SDK's retries."""
    return isinstance(exc, AwsConnectionError | HTTPClientError)


@lru_cache(maxsize=1)
def _session() -> Session:
    return get_session()


@cache
def client(service: str) -> Any:
    settings = get_settings()
    return _session().create_client(
        service,
        region_name=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        config=_config(),
    )


@lru_cache(maxsize=1)
def entities() -> Table:
    return Table(client("dynamodb"), get_settings().entities_table)


@lru_cache(maxsize=1)
def events() -> Table:
    return Table(client("dynamodb"), get_settings().events_table)


@lru_cache(maxsize=1)
def rate_limits() -> Table | None:
    name = get_settings().rate_limit_table
    return Table(client("dynamodb"), name) if name else None


def reset() -> None:
    """Forget cached clients (tests and the local stack point them elsewhere)."""
    _session.cache_clear()
    client.cache_clear()
    entities.cache_clear()
    events.cache_clear()
    rate_limits.cache_clear()
    lean.entities_reader.cache_clear()
