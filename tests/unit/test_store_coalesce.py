"""Counter updates of one item in one transaction are merged (DynamoDB refuses two operations on one item)."""

from __future__ import annotations

from decimal import Decimal

from billing.store.dynamo import Table, coalesce_adds


def test_adds_on_one_item_merge_and_go_last_and_zero_sums_vanish():
    table = Table(None, "t")
    put = table.put_op({"PK": "a", "SK": "1", "x": 1}, condition="attribute_not_exists(PK)")
    ops = [
        table.add_op("c", "k", {"n": 1, "amount": Decimal("2.5")}),
        put,
        table.add_op("c", "k", {"n": 2, "amount": Decimal("-2.5")}),
        table.add_op("c", "z", {"n": 1}),
        table.add_op("c", "z", {"n": -1}),
        table.update_op("b", "1", "SET y = :y", values={":y": 1}),
    ]
    merged = coalesce_adds(ops)
    assert merged[0] is put and merged[1]["Update"]["Key"]["PK"]["S"] == "b"
    assert len(merged) == 3
    last = merged[2]["Update"]
    assert last["UpdateExpression"] == "ADD #a0 :a0"
    assert last["ExpressionAttributeNames"] == {"#a0": "n"} and last["ExpressionAttributeValues"] == {":a0": {"N": "3"}}
