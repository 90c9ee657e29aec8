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
from decimal import Decimal
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


def _adds(op: Mapping[str, Any]) -> dict[str, Decimal] | None:
    """The amounts of an unconditional ``ADD``-only update op (as ``Table.add_op`` writes them), else None."""
    update = op.get("Update")
    if not update or "ConditionExpression" in update or not update["UpdateExpression"].startswith("ADD #a"):
        return None
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    out: dict[str, Decimal] = {}
    for pair in update["UpdateExpression"][4:].split(", "):
        name, value = pair.split(" ")
        out[names[name]] = out.get(names[name], Decimal(0)) + Decimal(values[value]["N"])
    return out


def coalesce_adds(ops: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the ``add_op`` updates of one item into one (summing per attribute); drop those that add nothing.

    The merged updates go last, after every other op in its order: callers read cancellation reasons by the
    position of their conditional ops, which come before any counter."""
    merged: dict[tuple[str, str, str], dict[str, Decimal]] = {}
    out: list[dict[str, Any] | tuple[str, str, str]] = []
    for op in ops:
        amounts = _adds(op)
        if amounts is None:
            out.append(op)
            continue
        key = (op["Update"]["TableName"], op["Update"]["Key"]["PK"]["S"], op["Update"]["Key"]["SK"]["S"])
        if key not in merged:
            merged[key] = {}
            out.append(key)
        for attr, amount in amounts.items():
            merged[key][attr] = merged[key].get(attr, Decimal(0)) + amount
    result: list[dict[str, Any]] = [entry for entry in out if not isinstance(entry, tuple)]
    for entry in out:
        if isinstance(entry, tuple):
            amounts = {a: v for a, v in merged[entry].items() if v}
            if amounts:
                names = {f"#a{n}": attr for n, attr in enumerate(amounts)}
                values = {f":a{n}": serialize_value(v) for n, v in enumerate(amounts.values())}
                expression = "ADD " + ", ".join(f"#a{n} :a{n}" for n in range(len(amounts)))
                result.append(
                    {
                        "Update": {
                            "TableName": entry[0],
                            "Key": {"PK": {"S": entry[1]}, "SK": {"S": entry[2]}},
                            "UpdateExpression": expression,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    }
                )
    return result


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

    def query_page(
        self,
        pk: str,
        *,
        index: str | None = None,
        sk_op: str | None = None,
        sk_values: Sequence[str] = (),
        forward: bool = True,
        limit: int | None = None,
        start_key: Mapping[str, Any] | None = None,
        projection: Sequence[str] = (),
        filter_expression: str | None = None,
        filter_values: Mapping[str, Any] | None = None,
        filter_names: Mapping[str, str] | None = None,
        consistent: bool = False,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One Query request: the items it returned and the key to resume after (None at the partition's end).

        ``sk_op`` is one of ``=``, ``<``, ``<=``, ``>``, ``>=`` (one value), ``between`` (two) or ``begins_with`` (one);
        ``projection`` names the attributes wanted (the read still costs the whole items, but less is parsed).
        """
        pk_attr, sk_attr = ("PK", "SK") if index is None else (f"{index}PK", f"{index}SK")
        expr = "#pk = :pk"
        names: dict[str, str] = {"#pk": pk_attr, **(filter_names or {})}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_op is not None:
            names["#sk"] = sk_attr
            if sk_op == "between":
                expr += " AND #sk BETWEEN :lo AND :hi"
                values[":lo"], values[":hi"] = {"S": sk_values[0]}, {"S": sk_values[1]}
            elif sk_op == "begins_with":
                expr += " AND begins_with(#sk, :sk)"
                values[":sk"] = {"S": sk_values[0]}
            else:
                expr += f" AND #sk {sk_op} :sk"
                values[":sk"] = {"S": sk_values[0]}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expr,
            "ScanIndexForward": forward,
        }
        if index is not None:
            kwargs["IndexName"] = index
        elif consistent:
            kwargs["ConsistentRead"] = True
        if limit is not None:
            kwargs["Limit"] = max(1, limit)
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        if projection:
            for n, attr in enumerate(dict.fromkeys(projection)):
                names[f"#p{n}"] = attr
            kwargs["ProjectionExpression"] = ", ".join(f"#p{n}" for n in range(len(dict.fromkeys(projection))))
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
            values.update(_values(filter_values) or {})
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        try:
            out = self.client.query(**kwargs)
        except ClientError as err:
            _raise_mapped(err)
        return [deserialize(raw) for raw in out.get("Items", [])], out.get("LastEvaluatedKey")

    def query(self, pk: str, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.query_pages(pk, **kwargs))

    def batch_get(
        self, keys: Sequence[tuple[str, str]], *, projection: Sequence[str] = (), consistent: bool = True
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), MAX_BATCH_GET):
            wanted: dict[str, Any] = {
                "Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[start : start + MAX_BATCH_GET]],
                "ConsistentRead": consistent,
            }
            if projection:
                attrs = list(dict.fromkeys(["PK", "SK", *projection]))
                wanted["ProjectionExpression"] = ", ".join(f"#p{n}" for n in range(len(attrs)))
                wanted["ExpressionAttributeNames"] = {f"#p{n}": a for n, a in enumerate(attrs)}
            request = {self.name: wanted}
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

    def add_op(self, pk: str, sk: str, amounts: Mapping[str, Any]) -> dict[str, Any]:
        """An unconditional ``ADD`` of numbers to attributes of one item (counters). Several of these on one item in
        one transaction are merged into one by ``transact`` (DynamoDB refuses two operations on one item)."""
        names = {f"#a{n}": attr for n, attr in enumerate(amounts)}
        values = {f":a{n}": amount for n, amount in enumerate(amounts.values())}
        return self.update_op(
            pk, sk, "ADD " + ", ".join(f"#a{n} :a{n}" for n in range(len(amounts))), names=names, values=values
        )

    def delete_op(self, pk: str, sk: str, *, condition: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.name, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}
        if condition:
            op["ConditionExpression"] = condition
        return {"Delete": op}

    def apply_each(self, ops: Sequence[dict[str, Any]]) -> None:
        """Apply independent ops one by one, not as a transaction (bulk maintenance: each op stands alone); puts
        without a condition go in batches of ``MAX_BATCH_WRITE``."""
        plain: list[dict[str, Any]] = []
        for op in coalesce_adds(ops):
            kind, body = next(iter(op.items()))
            if kind == "Put" and "ConditionExpression" not in body:
                plain.append({"PutRequest": {"Item": body["Item"]}})
                continue
            try:
                if kind == "Put":
                    self.client.put_item(**body)
                elif kind == "Update":
                    self.client.update_item(**body)
                else:
                    self.client.delete_item(**body)
            except ClientError as err:
                _raise_mapped(err)
        for start in range(0, len(plain), MAX_BATCH_WRITE):
            request: dict[str, Any] = {self.name: plain[start : start + MAX_BATCH_WRITE]}
            attempt = 0
            while request:
                try:
                    request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                except ClientError as err:
                    _raise_mapped(err)
                if request:
                    backoff(attempt)
                    attempt += 1

    def transact(self, ops: Sequence[dict[str, Any]], *, token: str | None = None) -> None:
        ops = coalesce_adds(ops)
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
