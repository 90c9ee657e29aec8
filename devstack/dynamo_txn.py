"""Make the embedded DynamoDB serializable, as DynamoDB is, for the local stack and tests that race writers.

moto applies a transaction by deep-copying every table it touches, applying the operations one by one and
restoring the copies when a condition fails, without any lock: two concurrent requests can interleave, and a
cancelled transaction can restore a copy taken before another request's committed write, undoing it. It also
makes each transaction cost a copy of the whole table. DynamoDB isolates every item write and every transaction.

``install()`` puts one lock around moto's item operations (per process: the embedded server runs in the test
process) and replaces the transaction with check-all-conditions-then-apply under that lock, which is what
DynamoDB guarantees. Cancellation reasons keep DynamoDB's shape, one per item.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_lock = threading.RLock()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    def locked(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _lock:
                return fn(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "get_item", "query", "batch_get_item"):
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        with _lock:
            seen: set[tuple[str, str]] = set()
            errors: list[Any] = []
            plan = []
            for item in transact_items:
                if len(item) > 1:
                    raise TransactWriteSingleOpException
                op_type, op = next(iter(item.items()))
                table_name = op["TableName"]
                if op_type == "Put":
                    table = self.get_table(table_name)
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                marker = (str(table_name), str(dict(sorted(key.items()))))
                if marker in seen:
                    raise MultipleTransactionsException()
                seen.add(marker)
                current = self.get_item(table_name, key)
                condition = op.get("ConditionExpression")
                if condition is not None:
                    expr = get_filter_expression(
                        condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                    )
                    if not expr.expr(current):
                        errors.append(("ConditionalCheckFailed", "The conditional request failed", None))
                        continue
                errors.append((None, None, None))
                plan.append((op_type, op, table_name, key))
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            for op_type, op, table_name, key in plan:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(
                        table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values
                    )
                elif op_type == "Delete":
                    self.delete_item(
                        table_name, key, expression_attribute_names=names, expression_attribute_values=values
                    )
                elif op_type == "Update":
                    self.update_item(
                        table_name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )

    DynamoDBBackend.transact_write_items = transact_write_items
    _installed = True
