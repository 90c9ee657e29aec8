"""Template tier: every metric of the product's namespace that an alarm or a dashboard reads is emitted by the code.

An alarm on a metric nobody emits never fires, and a dashboard widget on one stays empty; both look fine in the
console. Names are collected from alarms (``MetricName`` of single-metric alarms and of ``Metrics[].MetricStat``,
``SELECT ... FROM SCHEMA(<namespace>, ...)`` expressions) and dashboards (``["<namespace>", "Name", ...]`` rows,
``SEARCH('{<namespace>,...} MetricName="Name"', ...)`` expressions); ``AWS/*`` metrics are the platform's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from billing.observability import metrics
from devstack import template as tpl

TEMPLATE = tpl.load()
NAMESPACE = str(metrics.namespace)
PRODUCT_CODE = [tpl.ROOT / "layers" / "billing" / "billing", tpl.ROOT / "functions"]

_SEARCH = re.compile(r"SEARCH\(\s*'\{([^,}]+)[^}]*\}([^']*)'")
_SEARCH_NAME = re.compile(r'MetricName\s*=\s*\\?"([A-Za-z0-9_.-]+)\\?"')
_SCHEMA_SELECT = re.compile(r"SELECT\s+\w+\(\s*(\w+)\s*\)\s+FROM\s+SCHEMA\(\s*\"?([^,\")]+)", re.IGNORECASE)
_EMITTED = re.compile(r"add_(?:amount_)?metric\(\s*name=\"([A-Za-z0-9_]+)\"")


def _from_expression(expression: str) -> set[str]:
    names = set()
    for namespace, query in _SEARCH.findall(expression):
        if namespace.strip() == NAMESPACE:
            names.update(_SEARCH_NAME.findall(query))
    for name, namespace in _SCHEMA_SELECT.findall(expression):
        if namespace.strip() == NAMESPACE:
            names.add(name)
    return names


def _text(value: Any) -> str:
    if isinstance(value, tpl.Tagged):
        return _text(value.value if not isinstance(value.value, list) else value.value[0])
    return str(value)


def alarm_metrics() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for logical, alarm in tpl.resources(TEMPLATE, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        names = set()
        if props.get("Namespace") == NAMESPACE:
            names.add(str(props["MetricName"]))
        for query in props.get("Metrics") or []:
            metric = (query.get("MetricStat") or {}).get("Metric") or {}
            if metric.get("Namespace") == NAMESPACE:
                names.add(str(metric["MetricName"]))
            if "Expression" in query:
                names |= _from_expression(_text(query["Expression"]))
        out[logical] = names
    return out


def _rows(body: dict[str, Any]) -> list[Any]:
    return [row for widget in body["widgets"] for row in (widget.get("properties") or {}).get("metrics") or []]


def dashboard_metrics() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for logical, dashboard in tpl.resources(TEMPLATE, "AWS::CloudWatch::Dashboard").items():
        body = json.loads(_text(dashboard["Properties"]["DashboardBody"]))
        names = set()
        for row in _rows(body):
            if row and isinstance(row[0], str) and row[0] == NAMESPACE:
                names.add(row[1])
            for part in row:
                if isinstance(part, dict) and "expression" in part:
                    names |= _from_expression(part["expression"])
        out[logical] = names
    return out


def emitted() -> dict[str, list[str]]:
    """Metric name → the product files that emit it (``metrics.add_metric(name="...")``)."""
    out: dict[str, list[str]] = {}
    for root in PRODUCT_CODE:
        for path in sorted(root.rglob("*.py")):
            for name in _EMITTED.findall(path.read_text()):
                out.setdefault(name, []).append(str(path.relative_to(tpl.ROOT)))
    return out


def test_the_namespace_is_the_one_the_functions_publish_to() -> None:
    shared = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert shared["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE == "Billing"


def test_the_collection_sees_alarms_and_dashboards() -> None:
    """The parsers find what is there (so the main test cannot pass by collecting nothing)."""
    alarms, dashboards = alarm_metrics(), dashboard_metrics()
    assert alarms["StripeSyncFailureRateAlarm"] == {"StripeSyncFailed", "StripeSyncSucceeded"}
    assert alarms["WebhookRejectedSpikeAlarm"] == {"WebhookRejected"}
    assert alarms["StripeSyncDeadLetterQueueAlarm"] == set()  # AWS/SQS
    assert {"InvoiceFinalized", "InvoicePaid"} <= dashboards["BillingOverviewDashboard"]
    assert {"StripeSyncSucceeded", "StripeSyncFailed", "WebhookRejected"} <= dashboards["IntegrationHealthDashboard"]
    assert "EventsIngested" in dashboards["UsageAnalyticsDashboard"]
    assert not any(
        name.startswith("Approximate") or name in ("Errors", "5xx") for name in set().union(*alarms.values())
    )


def test_every_metric_read_by_an_alarm_or_a_dashboard_is_emitted() -> None:
    produced = emitted()
    missing = {
        f"{logical}: {name}"
        for logical, names in {**alarm_metrics(), **dashboard_metrics()}.items()
        for name in names
        if name not in produced
    }
    assert not missing, "metrics read by the template that no code emits:\n" + "\n".join(sorted(missing))


def test_the_sync_worker_counts_failures_and_redeliveries() -> None:
    produced = emitted()
    sync = str(Path("layers/billing/billing/services/sync_queue.py"))
    assert sync in produced["StripeSyncFailed"]
    assert sync in produced["StripeSyncRetried"]
