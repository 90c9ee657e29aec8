"""Typed settings. The only module that reads ``os.environ``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Settings:
    stage: str
    region: str
    entities_table: str
    events_table: str
    log_level: str
    # Set only by the local stack and tests: points every AWS client at an embedded endpoint.
    aws_endpoint_url: str | None
    # Queue URLs, filled in by the template for the functions that use them.
    backfill_queue_url: str | None
    # Seconds that ingestion may reuse the meters it looked up for an event name (see docs/metering.md).
    meter_cache_seconds: int
    # KMS key that encrypts connection secrets (Stripe keys, webhook secrets).
    secrets_key_arn: str | None
    # Stripe API base URL override (the local Stripe emulator); None means Stripe itself.
    stripe_api_base: str | None
    stripe_sync_queue_url: str | None
    max_body_bytes: int
    # Invoicing: the queue of subscription periods to invoice, the invoice number prefix, the wait after a
    # period ends before it is invoiced (late events), and how many earlier periods are re-read for late usage.
    invoice_queue_url: str | None
    invoice_number_prefix: str
    invoicing_grace_seconds: int
    late_usage_lookback_periods: int
    default_page_limit: int
    max_page_limit: int
    # Stripe webhooks: the queue behind the intake, the largest body accepted, the signature tolerance (both ways),
    # how long the intake reuses a decrypted webhook secret, and how long webhook records are kept.
    webhook_queue_url: str | None = None
    webhook_max_body_bytes: int = 256_000
    webhook_tolerance_seconds: int = 300
    webhook_secret_cache_seconds: int = 300
    webhook_record_days: int = 90
    # Per-API-key request limits (docs/operations.md): the table of window counters, the default number of
    # requests a key may make per window (0 turns the limit off), and the window length.
    # AWS SDK calls: tries in all (first call included) and timeouts in seconds. The template gives API functions
    # a budget that fits their Lambda timeout, so a persistent fault reaches the client as 429/503, not as a
    # gateway timeout; queue and schedule workers get more patience (tests/template: the budget invariant).
    aws_max_attempts: int = 5
    aws_connect_timeout: float = 2.0
    aws_read_timeout: float = 5.0
    rate_limit_table: str | None = None
    api_key_rate_limit: int = 6000
    api_key_rate_window_seconds: int = 60


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    env = os.environ
    return Settings(
        stage=env.get("STAGE", "dev"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        entities_table=env.get("ENTITIES_TABLE", "billing-entities"),
        events_table=env.get("EVENTS_TABLE", "billing-events"),
        log_level=env.get("LOG_LEVEL", "INFO"),
        aws_endpoint_url=env.get("BILLING_AWS_ENDPOINT_URL") or None,
        backfill_queue_url=env.get("BACKFILL_QUEUE_URL") or None,
        meter_cache_seconds=_int("METER_CACHE_SECONDS", 60),
        secrets_key_arn=env.get("SECRETS_KEY_ARN") or None,
        stripe_api_base=env.get("STRIPE_API_BASE") or None,
        stripe_sync_queue_url=env.get("STRIPE_SYNC_QUEUE_URL") or None,
        max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
        invoice_queue_url=env.get("INVOICE_QUEUE_URL") or None,
        invoice_number_prefix=env.get("INVOICE_NUMBER_PREFIX", "INV-"),
        invoicing_grace_seconds=_int("INVOICING_GRACE_SECONDS", 3600),
        late_usage_lookback_periods=_int("LATE_USAGE_LOOKBACK_PERIODS", 3),
        default_page_limit=50,
        max_page_limit=1000,
        webhook_queue_url=env.get("WEBHOOK_QUEUE_URL") or None,
        webhook_max_body_bytes=_int("WEBHOOK_MAX_BODY_BYTES", 256_000),
        webhook_tolerance_seconds=_int("WEBHOOK_TOLERANCE_SECONDS", 300),
        webhook_secret_cache_seconds=_int("WEBHOOK_SECRET_CACHE_SECONDS", 300),
        webhook_record_days=_int("WEBHOOK_RECORD_DAYS", 90),
        aws_max_attempts=max(1, _int("BILLING_AWS_MAX_ATTEMPTS", 5)),
        aws_connect_timeout=_float("BILLING_AWS_CONNECT_TIMEOUT", 2.0),
        aws_read_timeout=_float("BILLING_AWS_READ_TIMEOUT", 5.0),
        rate_limit_table=env.get("RATE_LIMIT_TABLE") or None,
        api_key_rate_limit=_int("API_KEY_RATE_LIMIT", 6000),
        api_key_rate_window_seconds=max(1, _int("API_KEY_RATE_WINDOW_SECONDS", 60)),
    )


def aws_credentials() -> tuple[str, str, str | None]:
    """The execution role's credentials as Lambda provides them (used only by ``billing.store.lean``)."""
    env = os.environ
    return (
        env.get("AWS_ACCESS_KEY_ID", ""),
        env.get("AWS_SECRET_ACCESS_KEY", ""),
        env.get("AWS_SESSION_TOKEN"),
    )


def reset_settings() -> None:
    """Forget cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
