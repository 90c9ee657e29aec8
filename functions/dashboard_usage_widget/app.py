"""The usage dashboard's CloudWatch custom widget: an environment's usage for the dashboard's time range, read
from the usage counters (the same figures as ``GET /dashboard/summary``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from billing.domain.metering import from_ms
from billing.observability import logger
from billing.scope import Scope
from billing.services import analytics
from billing.timeutil import utcnow


def lambda_handler(event: dict[str, Any], context: Any) -> str:
    if event.get("describe"):
        return "Usage from the counters: params `tenant_id` and `environment_id` (set by the template)."
    widget = event.get("widgetContext") or {}
    params = {**(widget.get("params") or {}), **(event.get("params") or {})}
    tenant, environment = str(params.get("tenant_id") or ""), str(params.get("environment_id") or "")
    if not tenant or not environment:
        return "<p>Set the template parameters UsageDashboardTenant and UsageDashboardEnvironment.</p>"
    span = widget.get("timeRange") or {}
    span = span.get("zoom") or span
    end = from_ms(int(span["end"])) if span.get("end") else utcnow()
    start = from_ms(int(span["start"])) if span.get("start") else end - timedelta(days=1)
    logger.info("usage widget", extra={"tenant_id": tenant, "environment_id": environment})
    return analytics.widget_html(Scope(tenant, environment), start, end)
