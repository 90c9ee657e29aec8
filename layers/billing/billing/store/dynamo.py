"""A small DynamoDB table adapter over the low-level client: (de)serialization, paging, transactions.

Limits that DynamoDB enforces (and the embedded server used locally does not) are enforced here:
at most 100 items per transaction, 25 per batch write, and 400 KB per item written whole (a larger one is a 413;
so is DynamoDB's own item-size refusal of an update).

Faults: botocore's standard retry mode retries throttling, 5xx and connection errors (``wiring._config``). It
does not retry a transaction cancelled only by a conflict with a concurrent transaction (or by per-item
throttling): a cancelled transaction wrote nothing, so ``transact`` retries it a few times with jittered
exponential backoff. Keys a batch read leaves unprocessed are read again with the same backoff. What still fails
is mapped to the error envelope: throttling to 429, conflicts and an unavailable service to 503, both with
``Retry-After`` (see docs/operations.md, "Faults").
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from billing.errors import PayloadTooLarge, ServiceUnavailable, TooManyRequests
from billing.store.attrs import deserialize_value, serialize_value

MAX_TRANSACT_ITEMS = 100
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_ITEM_BYTES = 400 * 1024

# A cancelled transaction, or a batch read with unprocessed keys, is tried this many times in all; the waits
# between tries are full-jitter exponential: uniform(0, min(RETRY_CAP, RETRY_BASE * 2**n)) seconds.
RETRY_ATTEMPTS = 6
RETRY_BASE = 0.025
RETRY_CAP = 0.5

_THROTTLES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
# Server-side failures that botocore already retried; the request may succeed later.
_UNAVAILABLE = {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
# Cancellation reasons that say nothing about the data: the same transaction may succeed when tried again.
_TRANSIENT_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_NO_REASON = {None, "None"}


class ConditionFailed(Exception):
    """A conditional write did not apply. ``reasons`` lists per-item codes for transactions."""

    def __init__(self, reasons: Sequence[str | None] = ()) -> None:
        super().__init__("condition failed")
        self.reasons = list(reasons)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: serialize_value(v) for k, v in item.items() if v is not None}


def _value_bytes(value: Mapping[str, Any]) -> int:
    """DynamoDB's size of one attribute value (documented item-size rules, rounded up)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return (len(str(inner)) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _value_bytes(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: v}) for v in inner)
    return 0


def item_bytes(item: Mapping[str, Any]) -> int:
    """The size DynamoDB counts for a serialized item: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + _value_bytes(value) for name, value in item.items())


def _check_size(item: Mapping[str, Any]) -> None:
    size = item_bytes(item)
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            "the record would exceed the 400 KB that one stored item may hold",
            {"limit_bytes": MAX_ITEM_BYTES, "size_bytes": size},
        )


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: deserialize_value(v) for k, v in item.items()}


def _values(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {k: serialize_value(v) for k, v in values.items()} if values else None


def backoff(attempt: int) -> None:
    """Sleep before try ``attempt + 2`` (full jitter)."""
    time.sleep(random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2**attempt)))


def _reasons(err: ClientError) -> list[str | None]:
    return [r.get("Code") for r in err.response.get("CancellationReasons", [])]


def transient_cancellation(err: ClientError) -> bool:
    """A transaction cancelled only by conflicts or throttling (no failed condition, no invalid item)."""
    if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = set(_reasons(err))
    return bool(reasons & _TRANSIENT_REASONS) and reasons <= _TRANSIENT_REASONS | _NO_REASON


def _raise_mapped(err: ClientError) -> None:
    code = err.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        raise ConditionFailed(["ConditionalCheckFailed"]) from err
    if code == "TransactionCanceledException":
        reasons = _reasons(err)
        if transient_cancellation(err):
            if "TransactionConflict" in reasons:
                raise ServiceUnavailable(
                    "the write conflicted with a concurrent change; retry", {"retry_after": 1}
                ) from err
            raise TooManyRequests("storage is busy; retry shortly", {"retry_after": 1}) from err
        raise ConditionFailed(reasons) from err
    if code in _THROTTLES:
        raise TooManyRequests("storage is busy; retry shortly", {"retry_after": 1}) from err
    if code in _UNAVAILABLE:
        raise ServiceUnavailable("storage is unavailable; retry shortly", {"retry_after": 1}) from err
    if code == "ValidationException" and "item size" in str(err.response.get("Error", {}).get("Message", "")).lower():
        raise PayloadTooLarge(
            "the record would exceed the 400 KB that one stored item may hold", {"limit_bytes": MAX_ITEM_BYTES}
        ) from err
    raise err


class Table:
    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    # -- single items -------------------------------------------------------------------------
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        try:
            out = self.client.get_item(
                TableName=self.name,
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                ConsistentRead=consistent,
            )
        except ClientError as err:
            _raise_mapped(err)
        item = out.get("Item")
        return deserialize(item) if item else None

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _check_size(kwargs["Item"])
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        if values:
            kwargs["ExpressionAttributeValues"] = _values(values)
        try:
            self.client.put_item(**kwargs)
        except ClientError as err:
            _raise_mapped(err)

    def update(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        if values:
            kwargs["ExpressionAttributeValues"] = _values(values)
        try:
            out = self.client.update_item(**kwargs)
        except ClientError as err:
            _raise_mapped(err)
        return deserialize(out.get("Attributes", {}))

    # -- queries ------------------------------------------------------------------------------
    def query_pages(
        self,
        pk: str,
        *,
        index: str | None = None,
        sk_prefix: str | None = None,
        sk_between: tuple[str, str] | None = None,
        forward: bool = True,
        limit: int | None = None,
        consistent: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield items of one partition in key order, following pagination."""
        pk_attr, sk_attr = ("PK", "SK") if index is None else (f"{index}PK", f"{index}SK")
        expr = "#pk = :pk"
        names = {"#pk": pk_attr}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix is not None:
            expr += " AND begins_with(#sk, :skp)"
            names["#sk"] = sk_attr
            values[":skp"] = {"S": sk_prefix}
        elif sk_between is not None:
            expr += " AND #sk BETWEEN :lo AND :hi"
            names["#sk"] = sk_attr
            values[":lo"] = {"S": sk_between[0]}
            values[":hi"] = {"S": sk_between[1]}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expr,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if index is not None:
            kwargs["IndexName"] = index
        elif consistent:
            kwargs["ConsistentRead"] = True
        produced = 0
        while True:
            if limit is not None:
                kwargs["Limit"] = max(1, limit - produced)
            try:
                out = self.client.query(**kwargs)
            except ClientError as err:
                _raise_mapped(err)
            for raw in out.get("Items", []):
                yield deserialize(raw)
                produced += 1
                if limit is not None and produced >= limit:
                    return
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def query(self, pk: str, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.query_pages(pk, **kwargs))

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), MAX_BATCH_GET):
            request = {
                self.name: {
                    "Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[start : start + MAX_BATCH_GET]],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while request:
                try:
                    out = self.client.batch_get_item(RequestItems=request)
                except ClientError as err:
                    _raise_mapped(err)
                found.extend(deserialize(i) for i in out.get("Responses", {}).get(self.name, []))
                request = out.get("UnprocessedKeys") or {}
                if request:
                    # DynamoDB returns what it could not read under load (throttling); ask again, later.
                    if attempt + 1 >= RETRY_ATTEMPTS:
                        raise TooManyRequests("storage is busy; retry shortly", {"retry_after": 1})
                    backoff(attempt)
                    attempt += 1
        return found

    # -- transactions -------------------------------------------------------------------------
    def put_op(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _check_size(op["Item"])
        if condition:
            op["ConditionExpression"] = condition
        if names:
            op["ExpressionAttributeNames"] = dict(names)
        if values:
            op["ExpressionAttributeValues"] = _values(values)
        return {"Put": op}

    def update_op(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {
            "TableName": self.name,
            "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
            "UpdateExpression": expression,
        }
        if condition:
            op["ConditionExpression"] = condition
        if names:
            op["ExpressionAttributeNames"] = dict(names)
        if values:
            op["ExpressionAttributeValues"] = _values(values)
        return {"Update": op}

    def delete_op(self, pk: str, sk: str, *, condition: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.name, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}
        if condition:
            op["ConditionExpression"] = condition
        return {"Delete": op}

    def transact(self, ops: Sequence[dict[str, Any]], *, token: str | None = None) -> None:
        if not ops:
            return
        if len(ops) > MAX_TRANSACT_ITEMS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACT_ITEMS} items, got {len(ops)}")
        kwargs: dict[str, Any] = {"TransactItems": list(ops)}
        if token:
            kwargs["ClientRequestToken"] = token
        for attempt in range(RETRY_ATTEMPTS):
            try:
                self.client.transact_write_items(**kwargs)
                return
            except ClientError as err:
                # A transaction cancelled by a conflict or throttling wrote nothing: trying it again is safe.
                if attempt + 1 < RETRY_ATTEMPTS and transient_cancellation(err):
                    backoff(attempt)
                    continue
                _raise_mapped(err)
