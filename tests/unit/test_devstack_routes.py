"""Route matching, response mapping, SQS batch results and schedule timing of the local stack."""

from __future__ import annotations

import base64
import json

import pytest

from devstack.gateway import BadResponse, Route, map_response, match_route
from devstack.queues import failed_ids
from devstack.schedules import Scheduler, rate_seconds, schedule_payload
from devstack.stack import RouteSpec, ScheduleSpec


def routes(*keys: str) -> list[Route]:
    out = []
    for key in keys:
        method, path = key.split(" ", 1)
        out.append(Route(RouteSpec(method, path, key, "Api", None)))
    return out


def pick(table: list[Route], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = match_route(table, method, path)
    return None if found is None else (found[0].spec.function, found[1])


TABLE = routes(
    "GET /api/v1/customers",
    "POST /api/v1/customers",
    "PUT /api/v1/customers",
    "GET /api/v1/customers/{id}",
    "GET /api/v1/customers/external/{external_id}",
    "POST /api/v1/customers/search",
    "ANY /api/v1/files/{proxy+}",
    "GET /api/v1/files/{proxy+}",
    "GET /api/v1/files/readme",
)


def test_exact_route_wins_over_path_variables():
    assert pick(TABLE, "POST", "/api/v1/customers/search") == ("POST /api/v1/customers/search", {})
    assert pick(TABLE, "GET", "/api/v1/files/readme") == ("GET /api/v1/files/readme", {})


def test_path_variable_match_and_decoding():
    assert pick(TABLE, "GET", "/api/v1/customers/cust_1") == ("GET /api/v1/customers/{id}", {"id": "cust_1"})
    assert pick(TABLE, "GET", "/api/v1/customers/external/a%2Fb%20c") == (
        "GET /api/v1/customers/external/{external_id}",
        {"external_id": "a/b c"},
    )


def test_method_beats_any_and_greedy_spans_segments():
    assert pick(TABLE, "GET", "/api/v1/files/a/b") == ("GET /api/v1/files/{proxy+}", {"proxy": "a/b"})
    assert pick(TABLE, "DELETE", "/api/v1/files/a/b") == ("ANY /api/v1/files/{proxy+}", {"proxy": "a/b"})


def test_no_route_for_wrong_method_trailing_slash_or_unknown_path():
    assert pick(TABLE, "DELETE", "/api/v1/customers") is None
    assert pick(TABLE, "GET", "/api/v1/customers/") is None
    assert pick(TABLE, "GET", "/api/v1/customers/a/b") is None
    assert pick(TABLE, "GET", "/api/v1/files") is None


def test_map_response_full_shape():
    status, headers, body = map_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-N": 3},
            "cookies": ["a=1"],
            "body": base64.b64encode(b"\xff\x00").decode(),
            "isBase64Encoded": True,
        }
    )
    assert status == 201 and body == b"\xff\x00"
    assert ("Content-Type", "text/plain") in headers and ("X-N", "3") in headers and ("Set-Cookie", "a=1") in headers


def test_map_response_infers_200_json_without_status_code():
    assert map_response({"ok": True}) == (200, [("Content-Type", "application/json")], b'{"ok": true}')
    assert map_response("text")[2] == b'"text"'


@pytest.mark.parametrize(
    "result", [{"statusCode": "abc"}, {"statusCode": 99}, {"statusCode": 200, "body": "!", "isBase64Encoded": True}]
)
def test_map_response_rejects_malformed_results(result):
    with pytest.raises(BadResponse):
        map_response(result)


BATCH = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("result", "report", "expected"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, True, {"m2"}),
        ({"batchItemFailures": []}, True, set()),
        (None, True, set()),
        ({}, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "other"}]}, True, set(BATCH)),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, set(BATCH)),
        ({"batchItemFailures": "m1"}, True, set(BATCH)),
        ("not an object", True, set(BATCH)),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, False, set()),
    ],
)
def test_failed_ids_follow_lambdas_rules(result, report, expected):
    assert failed_ids(result, BATCH, report) == expected


def test_rate_expressions():
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86400
    assert rate_seconds("cron(0 3 * * ? *)") is None
    assert rate_seconds("at(2030-01-01T00:00:00)") is None
    with pytest.raises(ValueError):
        rate_seconds("rate(1 minutes)")
    with pytest.raises(ValueError):
        rate_seconds("rate(0 minutes)")


def test_scheduler_runs_rate_schedules_when_due_and_never_cron():
    now = [1000.0]
    calls = []
    specs = [
        ScheduleSpec("Every5", "ScheduleV2", "rate(5 minutes)", True, '{"n": 1}', function="Fn"),
        ScheduleSpec("Nightly", "Schedule", "cron(0 3 * * ? *)", True, None, function="Fn"),
        ScheduleSpec("Off", "ScheduleV2", "rate(1 minute)", False, None, function="Fn"),
    ]
    scheduler = Scheduler(specs, lambda fn, event: calls.append(event), lambda url, body: None, clock=lambda: now[0])
    assert scheduler.tick() == 300
    assert calls == []
    now[0] += 300
    scheduler.tick()
    assert calls == [{"n": 1}]
    now[0] += 1000  # late: one run, then back on the five-minute grid
    scheduler.tick()
    assert len(calls) == 2 and scheduler.next_due["Every5"] == 1000 + 300 * 5
    assert scheduler.runs == {"Every5": 2, "Nightly": 0, "Off": 0}


def test_schedule_payloads():
    rule = ScheduleSpec("R", "Schedule", "rate(1 hour)", True, None, function="Fn")
    from datetime import UTC, datetime

    event = schedule_payload(rule, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert event["detail-type"] == "Scheduled Event" and event["time"] == "2030-01-02T03:04:05Z"
    v2 = ScheduleSpec(
        "S", "ScheduleV2", "rate(1 hour)", True, '{"at": "<aws.scheduler.scheduled-time>"}', function="Fn"
    )
    assert schedule_payload(v2, datetime(2030, 1, 2, tzinfo=UTC)) == {"at": "2030-01-02T00:00:00Z"}
    assert (
        schedule_payload(ScheduleSpec("E", "ScheduleV2", "rate(1 hour)", True, None, function="Fn"), datetime.now(UTC))
        == {}
    )
    assert json.dumps(schedule_payload(rule, datetime.now(UTC)))
