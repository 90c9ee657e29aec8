"""DynamoDB faults injected into the product's real botocore client.

A handler on the client's ``before-send.dynamodb.<Operation>`` event answers the first ``count`` matching HTTP
requests itself, with the status and error body DynamoDB sends (or raises the connection error botocore raises),
and lets every later request through to the embedded server. botocore parses these answers and runs its retry
policy exactly as it would against AWS: each retry is a new HTTP request and passes through the handler again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from billing import wiring
from billing.settings import get_settings

_PREFIX = "com.amazonaws.dynamodb.v20120810#"

THROTTLING = (
    400,
    {
        "__type": "com.amazon.coral.availability#ThrottlingException",
        "message": "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
        "scaling your table or index so please try again shortly. If exceptions persist, check if you have a hot "
        "key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
    },
)
PROVISIONED = (
    400,
    {
        "__type": _PREFIX + "ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded. Consider increasing "
        "your provisioning level with the UpdateTable API.",
    },
)
INTERNAL = (500, {"__type": _PREFIX + "InternalServerError", "message": "Internal server error"})


def cancelled(reasons: list[str | None]) -> tuple[int, dict[str, Any]]:
    """A TransactionCanceledException with one reason per item (None: that item was fine)."""
    messages = {
        "TransactionConflict": "Transaction is ongoing for the item",
        "ConditionalCheckFailed": "The conditional request failed",
        "ThrottlingError": "Throughput exceeds the current capacity for one or more global secondary indexes. "
        "DynamoDB is automatically scaling your index so please try again shortly.",
    }
    codes = ["None" if r is None else r for r in reasons]
    return (
        400,
        {
            "__type": _PREFIX + "TransactionCanceledException",
            "CancellationReasons": [{"Code": c, **({"Message": messages[c]} if c in messages else {})} for c in codes],
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
            f"[{', '.join(codes)}]",
        },
    )


Answer = tuple[int, dict[str, Any]] | Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def _first_item(reason: str) -> Answer:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return cancelled([reason, *([None] * (len(body["TransactItems"]) - 1))])

    return answer


# The transaction's first item conflicted with a concurrent transaction / was throttled (one reason per item).
CONFLICT = _first_item("TransactionConflict")
ITEM_THROTTLED = _first_item("ThrottlingError")


def unprocessed(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A BatchGetItem that read nothing under load: every key comes back unprocessed."""
    return 200, {"Responses": {table: [] for table in body["RequestItems"]}, "UnprocessedKeys": body["RequestItems"]}


CONNECTION_ERRORS = {
    "endpoint": lambda url: EndpointConnectionError(endpoint_url=url),
    "connect-timeout": lambda url: ConnectTimeoutError(endpoint_url=url),
    "read-timeout": lambda url: ReadTimeoutError(endpoint_url=url),
}


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@dataclass
class Fault:
    operation: str
    answer: Answer | None = None  # status and JSON body, or a function of the request body giving them
    error: str | None = None  # a key of CONNECTION_ERRORS
    count: float = math.inf  # requests to fault; inf: until cleared
    tables: tuple[str, ...] = ()
    seen: int = 0  # matching requests (faulted or not)
    injected: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def _matches(self, body: dict[str, Any]) -> bool:
        text = json.dumps(body)
        return any(f'"{table}"' in text for table in self.tables)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        body = json.loads(request.body or b"{}")
        if not self._matches(body):
            return None
        self.seen += 1
        self.bodies.append(body)
        if self.injected >= self.count:
            return None
        self.injected += 1
        if self.error is not None:
            raise CONNECTION_ERRORS[self.error](request.url)
        assert self.answer is not None
        status, payload = self.answer(body) if callable(self.answer) else self.answer
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": f"FAULT{self.injected:04d}",
        }
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))

    def clear(self) -> None:
        self.count = self.injected


@contextmanager
def inject(
    operation: str,
    answer: Answer | None = None,
    *,
    error: str | None = None,
    count: float = math.inf,
) -> Iterator[Fault]:
    """Fault the product's ``operation`` requests to its own tables (not the rate-limit table) while active."""
    settings = get_settings()
    fault = Fault(operation, answer, error, count, tables=(settings.entities_table, settings.events_table))
    events = wiring.client("dynamodb").meta.events
    event = f"before-send.dynamodb.{operation}"
    unique = f"test-fault-{operation}-{id(fault)}"
    events.register_first(event, fault, unique_id=unique)
    try:
        yield fault
    finally:
        events.unregister(event, unique_id=unique)
