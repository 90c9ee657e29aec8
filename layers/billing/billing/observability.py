"""The one Logger and Metrics of the product.

Tracing is the platform's (``Tracing: Active`` in template.yaml gives every invocation an X-Ray segment).
Powertools' Tracer is not used: it imports the X-Ray SDK, which costs ~300 ms of cold start per function
(see docs/decisions.md).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics(namespace="Billing")

__all__ = ["MetricUnit", "logger", "metrics"]
