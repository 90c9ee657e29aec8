"""Queues, function URLs, schedules and the HTTP API's own behaviour, on the fixture template."""

from __future__ import annotations

import base64
import json
import uuid

import requests
from boto3.dynamodb.conditions import Key

from tests.e2e.conftest import LocalStack


def records(stack: LocalStack, pk: str) -> list[dict]:
    table = boto3_table(stack)
    return table.query(KeyConditionExpression=Key("PK").eq(pk), ConsistentRead=True)["Items"]


def boto3_table(stack: LocalStack):
    import boto3

    resource = boto3.resource(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=stack.aws,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return resource.Table("RecordsTable")


def drain(stack: LocalStack, timeout: float = 30) -> requests.Response:
    return requests.post(f"{stack.api}/_local/queues/drain", params={"timeout": timeout}, timeout=timeout + 10)


# -- SQS: function URL → queue → consumer with partial batch failures → DLQ --------------------------------


def test_queue_round_trip_partial_failures_and_dead_letter_queue(fixture_stack: LocalStack):
    run = uuid.uuid4().hex[:8]
    bodies = [f"ok-{run}-1", f"ok-{run}-2", f"fail-{run}"]
    for body in bodies:
        res = requests.post(f"{fixture_stack.urls}/EnqueueFunction/", data=body, timeout=5)
        assert res.status_code == 202 and res.json()["id"]

    timed_out = drain(fixture_stack, timeout=0.2)
    assert timed_out.status_code == 504, "the failing message is still being retried"
    assert timed_out.json()["drained"] is False

    res = drain(fixture_stack)
    assert res.status_code == 200 and res.json()["drained"] is True

    processed = {item["SK"] for item in records(fixture_stack, "processed")}
    assert {f"ok-{run}-1", f"ok-{run}-2"} <= processed
    assert f"fail-{run}" not in processed
    # Successes are deleted after one delivery; the failure is delivered maxReceiveCount (2) times.
    assert [i["SK"] for i in records(fixture_stack, f"attempt#ok-{run}-1")] == ["1"]
    assert sorted(i["SK"] for i in records(fixture_stack, f"attempt#fail-{run}")) == ["1", "2"]

    sqs = fixture_stack.client("sqs")
    dlq = sqs.get_queue_url(QueueName="local-work-dlq")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == [f"fail-{run}"]
    for message in got:
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])


def test_queues_are_built_from_the_template(fixture_stack: LocalStack):
    sqs = fixture_stack.client("sqs")
    work = sqs.get_queue_url(QueueName="local-work")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "30"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:local-work-dlq",
        "maxReceiveCount": 2,
    }
    fifo = sqs.get_queue_url(QueueName="OrderedQueue.fifo")["QueueUrl"]
    fifo_attrs = sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    assert fifo_attrs["FifoQueue"] == "true" and fifo_attrs["ContentBasedDeduplication"] == "true"


# -- function URLs ----------------------------------------------------------------------------------------


def test_function_url_event_and_first_segment_routing(fixture_stack: LocalStack):
    res = requests.post(
        f"{fixture_stack.urls}/EchoFunction/a/b?x=1&x=2",
        data=b"\x00\x01binary",
        headers={"content-type": "application/octet-stream"},
        timeout=5,
    )
    assert res.status_code == 200
    body = res.json()
    event = body["event"]
    assert body["function"] == "EchoFunction"
    assert event["rawPath"] == "/a/b" and event["routeKey"] == "$default"
    assert event["rawQueryString"] == "x=1&x=2" and event["queryStringParameters"] == {"x": "1,2"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\x01binary"
    assert "authorizer" not in event["requestContext"]
    assert requests.get(f"{fixture_stack.urls}/NoSuchFunction/", timeout=5).status_code == 404


# -- HTTP API: routing, authorizer, response mapping --------------------------------------------------------


def test_most_specific_route_wins_and_path_parameters(fixture_stack: LocalStack):
    headers = {"x-api-key": "ok-routes"}
    special = requests.get(f"{fixture_stack.api}/items/special", headers=headers, timeout=5).json()["event"]
    assert special["routeKey"] == "GET /items/special" and "pathParameters" not in special
    item = requests.get(f"{fixture_stack.api}/items/42", headers=headers, timeout=5).json()["event"]
    assert item["routeKey"] == "GET /items/{id}" and item["pathParameters"] == {"id": "42"}
    greedy = requests.delete(f"{fixture_stack.api}/files/a/b/c.txt", headers=headers, timeout=5).json()["event"]
    assert greedy["routeKey"] == "ANY /files/{proxy+}" and greedy["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert requests.get(f"{fixture_stack.api}/items", headers=headers, timeout=5).status_code == 404


def test_authorizer_context_cache_and_refusals(fixture_stack: LocalStack):
    key = f"ok-{uuid.uuid4().hex}"
    for _ in range(3):
        res = requests.get(f"{fixture_stack.api}/items/1", headers={"x-api-key": key}, timeout=5)
        assert res.status_code == 200
    event = res.json()["event"]
    assert event["requestContext"]["authorizer"]["lambda"] == {"caller": key, "route": "GET /items/{id}"}
    assert len(records(fixture_stack, f"authorizer#{key}")) == 1, "the result is cached per key"

    denied = requests.get(f"{fixture_stack.api}/items/1", headers={"x-api-key": "deny-me"}, timeout=5)
    assert denied.status_code == 403 and denied.json() == {"message": "Forbidden"}
    missing = requests.get(f"{fixture_stack.api}/items/1", timeout=5)
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    assert records(fixture_stack, "authorizer#") == [], "no identity, no authorizer call"

    public = requests.post(f"{fixture_stack.api}/public", data="{}", timeout=5)
    assert public.status_code == 200 and "authorizer" not in public.json()["event"]["requestContext"]


def test_response_mapping_errors_and_function_environment(fixture_stack: LocalStack):
    headers = {"x-api-key": "ok-mapping"}
    res = requests.get(f"{fixture_stack.api}/items/1", headers=headers, timeout=5)
    assert res.headers["x-echo"] == "yes"
    assert res.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2; Path=/"]
    env = res.json()["env"]
    assert env == {
        "WORK_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:local-work",
        "WORK_QUEUE_NAME": "local-work",
        "ORDERED_QUEUE_URL": env["ORDERED_QUEUE_URL"],
        "SIGNING_KEY_ARN": env["SIGNING_KEY_ARN"],
        "SECRET_ARN": env["SECRET_ARN"],
        "LABEL": "local:us-east-1:local-work",
        "MODE": "echo",
    }
    assert env["ORDERED_QUEUE_URL"] == f"{fixture_stack.aws}/123456789012/OrderedQueue.fifo"
    assert env["SIGNING_KEY_ARN"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    secret = fixture_stack.client("secretsmanager").get_secret_value(SecretId=env["SECRET_ARN"])
    assert json.loads(secret["SecretString"]) == {"token": "fixture"}

    inferred = requests.get(f"{fixture_stack.api}/items/1", params={"raw": "1"}, headers=headers, timeout=5)
    assert inferred.status_code == 200 and inferred.json() == {"inferred": True}
    assert inferred.headers["content-type"] == "application/json"

    boom = requests.get(f"{fixture_stack.api}/boom", headers=headers, timeout=5)
    assert boom.status_code == 500 and boom.json() == {"message": "Internal Server Error"}
    assert "boom in mode boom" in fixture_stack.log(), "each function runs with its own environment"


# -- schedules ---------------------------------------------------------------------------------------------


def test_schedules_are_listed_from_the_template(fixture_stack: LocalStack):
    listed = {
        s["name"]: s for s in requests.get(f"{fixture_stack.api}/_local/schedules", timeout=5).json()["schedules"]
    }
    assert set(listed) == {"MarkerFunctionHourly", "MarkerFunctionNightly", "MarkerEveryFiveMinutes"}
    assert listed["MarkerFunctionHourly"]["type"] == "ScheduleV2"
    assert listed["MarkerFunctionHourly"]["expression"] == "rate(1 hour)"
    assert listed["MarkerFunctionHourly"]["runs_automatically"] is True
    assert listed["MarkerFunctionNightly"]["type"] == "Schedule"
    assert listed["MarkerFunctionNightly"]["runs_automatically"] is False, "cron runs only on demand"
    assert listed["MarkerEveryFiveMinutes"]["type"] == "AWS::Scheduler::Schedule"
    assert listed["MarkerEveryFiveMinutes"]["target"] == {"function": "MarkerFunction"}


def test_run_a_schedule_now_returns_its_result(fixture_stack: LocalStack):
    res = requests.post(f"{fixture_stack.api}/_local/schedules/MarkerFunctionHourly/run", timeout=10)
    assert res.status_code == 200
    body = res.json()
    assert body["function"] == "MarkerFunction"
    marker = body["result"]["marker"]
    items = {i["SK"]: json.loads(i["payload"]) for i in records(fixture_stack, "marker")}
    assert items[marker] == {
        "marker": "hourly",
        "arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/MarkerFunctionHourly",
    }

    nightly = requests.post(f"{fixture_stack.api}/_local/schedules/MarkerFunctionNightly/run", timeout=10).json()
    items = {i["SK"]: json.loads(i["payload"]) for i in records(fixture_stack, "marker")}
    envelope = items[nightly["result"]["marker"]]
    assert envelope["detail-type"] == "Scheduled Event" and envelope["source"] == "aws.events"
    assert envelope["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/MarkerFunctionNightly"]

    listed = {
        s["name"]: s for s in requests.get(f"{fixture_stack.api}/_local/schedules", timeout=5).json()["schedules"]
    }
    assert listed["MarkerFunctionHourly"]["runs"] >= 1 and listed["MarkerFunctionHourly"]["last_run"]
    assert requests.post(f"{fixture_stack.api}/_local/schedules/Missing/run", timeout=5).status_code == 404
