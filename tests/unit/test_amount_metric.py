"""Money figures for the dashboards are published per currency, as their own EMF record."""

from __future__ import annotations

import json
from decimal import Decimal

from billing.observability import NAMESPACE, add_amount_metric


def test_an_amount_is_published_at_once_with_its_currency(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "invoicing.worker")
    capsys.readouterr()
    add_amount_metric(name="InvoicedAmount", amount=Decimal("42.50"), currency="USD")
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [directive] = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    # With the function's service (POWERTOOLS_SERVICE_NAME), as the dashboard's SEARCH schema expects.
    assert directive["Dimensions"] == [["currency", "service"]]
    assert directive["Metrics"][0]["Name"] == "InvoicedAmount"
    assert record["currency"] == "usd"
    assert record["InvoicedAmount"] in (42.5, [42.5])
