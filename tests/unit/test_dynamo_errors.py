"""Which DynamoDB errors the table adapter retries, and what each one becomes for the client."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from billing.errors import PayloadTooLarge, ServiceUnavailable, TooManyRequests
from billing.store import dynamo
from billing.store.dynamo import ConditionFailed, _raise_mapped, transient_cancellation


def cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetItem")


@pytest.mark.parametrize(
    ("reasons", "retried", "mapped"),
    [
        (("None", "TransactionConflict"), True, ServiceUnavailable),
        (("TransactionConflict", "TransactionConflict"), True, ServiceUnavailable),
        (("ThrottlingError", "None"), True, TooManyRequests),
        (("TransactionConflict", "ThrottlingError"), True, ServiceUnavailable),
        (("ConditionalCheckFailed", "TransactionConflict"), False, ConditionFailed),
        (("None", "ConditionalCheckFailed"), False, ConditionFailed),
        (("ValidationError", "None"), False, ConditionFailed),
        (("TransactionConflict", "ValidationError"), False, ConditionFailed),
    ],
)
def test_cancellations(reasons, retried, mapped):
    err = cancelled(*reasons)
    assert transient_cancellation(err) is retried
    with pytest.raises(mapped) as raised:
        _raise_mapped(err)
    if mapped is not ConditionFailed:
        assert raised.value.details == {"retry_after": 1}


@pytest.mark.parametrize(
    ("code", "mapped"),
    [
        ("ThrottlingException", TooManyRequests),
        ("ProvisionedThroughputExceededException", TooManyRequests),
        ("RequestLimitExceeded", TooManyRequests),
        ("InternalServerError", ServiceUnavailable),
        ("ServiceUnavailable", ServiceUnavailable),
        ("ConditionalCheckFailedException", ConditionFailed),
        ("ValidationException", ClientError),
    ],
)
def test_single_item_errors(code, mapped):
    assert not transient_cancellation(error(code))
    with pytest.raises(mapped):
        _raise_mapped(error(code))


class FlakyClient:
    """A client whose transaction fails with the given errors, then succeeds."""

    def __init__(self, *errors: ClientError) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, object]] = []

    def transact_write_items(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return {}


@pytest.fixture
def no_wait(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(dynamo.time, "sleep", waits.append)
    return waits


OP = {"Put": {"TableName": "t", "Item": {"PK": {"S": "a"}, "SK": {"S": "b"}}}}


def test_transact_retries_a_conflict_with_growing_jittered_waits_and_the_same_request(no_wait):
    client = FlakyClient(*[cancelled("TransactionConflict")] * 3)
    dynamo.Table(client, "t").transact([OP], token="tok-1")
    assert len(client.calls) == 4
    assert all(call == {"TransactItems": [OP], "ClientRequestToken": "tok-1"} for call in client.calls)
    assert len(no_wait) == 3
    for attempt, wait in enumerate(no_wait):
        assert 0 <= wait <= min(dynamo.RETRY_CAP, dynamo.RETRY_BASE * 2**attempt)


def test_transact_gives_up_after_the_attempts_with_a_503(no_wait):
    client = FlakyClient(*[cancelled("TransactionConflict")] * dynamo.RETRY_ATTEMPTS)
    with pytest.raises(ServiceUnavailable):
        dynamo.Table(client, "t").transact([OP])
    assert len(client.calls) == dynamo.RETRY_ATTEMPTS
    assert len(no_wait) == dynamo.RETRY_ATTEMPTS - 1


def test_transact_does_not_retry_a_failed_condition(no_wait):
    client = FlakyClient(cancelled("ConditionalCheckFailed"))
    with pytest.raises(ConditionFailed) as failed:
        dynamo.Table(client, "t").transact([OP])
    assert failed.value.reasons == ["ConditionalCheckFailed"]
    assert len(client.calls) == 1 and no_wait == []


def test_the_product_backoff_is_bounded():
    # The worst case of all waits stays well inside an API function's timeout (10 s).
    worst = sum(min(dynamo.RETRY_CAP, dynamo.RETRY_BASE * 2**a) for a in range(dynamo.RETRY_ATTEMPTS - 1))
    assert 0.1 < worst < 2


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def put_item(self, **kwargs: object) -> None:
        self.calls.append("put_item")


def test_an_item_over_400_kb_is_refused_with_413_before_any_call():
    client = _Recorder()
    table = dynamo.Table(client, "T")
    table.put({"PK": "p", "SK": "s", "blob": "x" * (399 * 1024)})
    assert client.calls == ["put_item"]
    with pytest.raises(PayloadTooLarge) as big:
        table.put({"PK": "p", "SK": "s", "blob": "x" * (400 * 1024)})
    assert big.value.http_status == 413 and big.value.details["limit_bytes"] == 400 * 1024
    with pytest.raises(PayloadTooLarge):
        table.put_op({"PK": "p", "SK": "s", "m": {f"k{i}": "v" * 1000 for i in range(420)}})
    assert client.calls == ["put_item"]


def test_item_size_counts_names_and_values_as_dynamodb_does():
    item = dynamo.serialize({"ab": "xyz", "n": 12345, "m": {"k": "v"}, "l": ["a", "bb"], "t": True})
    # "ab"+"xyz" = 5; "n" + 12345 (5 digits: 3+1) = 5; "m" + (3 + "k" + 1 + "v") = 7; "l" + (3 + 1+1 + 1+2) = 9;
    # "t" + 1 = 2
    assert dynamo.item_bytes(item) == 5 + 5 + 7 + 9 + 2


def test_dynamodbs_own_item_size_refusal_is_a_413():
    err = ClientError(
        {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}},
        "UpdateItem",
    )
    with pytest.raises(PayloadTooLarge):
        _raise_mapped(err)
    other = ClientError({"Error": {"Code": "ValidationException", "Message": "bad expression"}}, "UpdateItem")
    with pytest.raises(ClientError):
        _raise_mapped(other)
