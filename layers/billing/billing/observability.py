"""The one Logger and Metrics of the product.

Tracing is the platform's (``Tracing: Active`` in template.yaml gives every invocation an X-Ray segment).
Powertools' Tracer is not used: it imports the X-Ray SDK, which costs ~300 ms of cold start per function
(see docs/decisions.md).
"""

from __future__ import annotations

from decimal import Decimal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "Billing"

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)


def add_amount_metric(name: str, amount: Decimal, currency: str) -> None:
    """A money figure for the dashboards, per currency (dimension ``currency``), in major units.

    Published at once as its own EMF record, since the currency dimension must not apply to the function's other
    metrics. A float is fine here: dashboards chart it; nothing is billed from it.
    """
    with single_metric(name=name, unit=MetricUnit.NoUnit, value=float(amount), namespace=NAMESPACE) as metric:
        metric.add_dimension(name="currency", value=currency.lower())


__all__ = ["MetricUnit", "add_amount_metric", "logger", "metrics"]
