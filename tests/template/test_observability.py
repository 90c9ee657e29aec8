"""Template tier: alarms notify the alarm topic, every dead-letter queue has one, the four dashboards parse."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack import template as tpl

TEMPLATE = tpl.load()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
ALARMS = tpl.resources(TEMPLATE, "AWS::CloudWatch::Alarm")
DASHBOARDS = tpl.resources(TEMPLATE, "AWS::CloudWatch::Dashboard")


def _logical(value: Any) -> str | None:
    """The logical id behind ``!Ref X``, ``!GetAtt X.Attr`` or ``!GetAtt [X, Attr]``."""
    if isinstance(value, tpl.Tagged):
        if value.tag == "Ref":
            return str(value.value)
        if value.tag == "GetAtt":
            target = value.value
            return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
    return None


def _dead_letter_queues() -> set[str]:
    found = set()
    for res in tpl.resources(TEMPLATE, "AWS::SQS::Queue").values():
        policy = (res.get("Properties") or {}).get("RedrivePolicy") or {}
        target = _logical(policy.get("deadLetterTargetArn"))
        if target:
            found.add(target)
    return found


def _queues_alarmed() -> set[str]:
    out = set()
    for alarm in ALARMS.values():
        props = alarm["Properties"]
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            for dim in props.get("Dimensions") or []:
                if dim["Name"] == "QueueName" and _logical(dim["Value"]):
                    out.add(str(_logical(dim["Value"])))
    return out


def _substitute(body: Any) -> str:
    """A ``!Sub`` string with every ``${...}`` replaced by a plausible value (names, ARNs, the region)."""
    assert isinstance(body, tpl.Tagged) and body.tag == "Sub", "dashboard bodies are built with !Sub"
    text = body.value if isinstance(body.value, str) else body.value[0]
    return re.sub(r"\$\{([^}!]+)\}", lambda m: "placeholder-" + re.sub(r"[^A-Za-z0-9]", "-", m.group(1)), text)


def test_every_dead_letter_queue_has_a_not_empty_alarm() -> None:
    dlqs = _dead_letter_queues()
    assert dlqs, "the template has dead-letter queues (found through RedrivePolicy)"
    missing = dlqs - _queues_alarmed()
    assert not missing, f"dead-letter queues without an alarm: {sorted(missing)}"
    for alarm in ALARMS.values():
        props = alarm["Properties"]
        if props.get("Namespace") == "AWS/SQS":
            assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_alarm_notifies_the_alarm_topic() -> None:
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert ALARMS
    for name, alarm in ALARMS.items():
        actions = alarm["Properties"].get("AlarmActions") or []
        assert [_logical(a) for a in actions] == ["AlarmTopic"], name


def test_the_email_subscription_is_optional() -> None:
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert _logical(subscription["Properties"]["Endpoint"]) == "AlarmEmail"


@pytest.mark.parametrize(
    ("metric", "why"),
    [
        ("Errors", "Lambda errors"),
        ("Throttles", "Lambda throttles"),
        ("5xx", "API 5xx rate"),
        ("WebhookRejected", "webhook signature rejections"),
        ("StripeSyncFailed", "Stripe sync failure rate"),
    ],
)
def test_the_operational_alarms_exist(metric: str, why: str) -> None:
    assert any(metric in json.dumps(alarm["Properties"], default=repr) for alarm in ALARMS.values()), why


def test_the_four_dashboards_exist_and_their_bodies_are_json() -> None:
    names = {res["Properties"]["DashboardName"].value.split("}-", 1)[1]: logical for logical, res in DASHBOARDS.items()}
    assert set(names) == {"billing-overview", "customer-health", "integration-health", "usage-analytics"}
    for logical, dashboard in DASHBOARDS.items():
        body = json.loads(_substitute(dashboard["Properties"]["DashboardBody"]))
        widgets = body["widgets"]
        assert len(widgets) >= 4, logical
        for widget in widgets:
            assert widget["type"] in ("text", "metric", "alarm", "log", "custom"), logical
            assert {"x", "y", "width", "height", "properties"} <= set(widget), logical


def test_top_customers_come_from_a_contributor_insights_rule_on_the_ingest_logs() -> None:
    rules = tpl.resources(TEMPLATE, "AWS::CloudWatch::InsightRule")
    assert len(rules) == 1
    rule = next(iter(rules.values()))["Properties"]
    body = json.loads(_substitute(rule["RuleBody"]))
    assert body["LogFormat"] == "JSON"
    assert body["LogGroupNames"] == ["placeholder-EventsIngestLogGroup", "placeholder-EventsBulkLogGroup"]
    assert "$.external_customer_id" in body["Contribution"]["Keys"]
    usage = json.loads(_substitute(RESOURCES["UsageAnalyticsDashboard"]["Properties"]["DashboardBody"]))
    assert any("insightRule" in w["properties"] for w in usage["widgets"])
    # one metric per customer is exactly what the rule replaces
    assert not any("external_customer_id" in json.dumps(a["Properties"], default=repr) for a in ALARMS.values())


def test_the_usage_dashboard_reads_the_usage_counters_through_its_widget_function() -> None:
    usage = json.loads(_substitute(RESOURCES["UsageAnalyticsDashboard"]["Properties"]["DashboardBody"]))
    (widget,) = [w for w in usage["widgets"] if w["type"] == "custom"]
    assert widget["properties"]["endpoint"] == "placeholder-DashboardUsageWidgetFunction-Arn"
    assert set(widget["properties"]["params"]) == {"tenant_id", "environment_id"}
