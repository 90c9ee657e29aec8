"""The one Logger, Tracer and Metrics of the product."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="Billing")

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
