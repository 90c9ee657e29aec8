"""Entitlements, the pure rules: combining sources, the usage window, the percentage, the check."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing.domain import entitlements as rules


def source(**fields: object) -> dict[str, object]:
    return {"is_enabled": True, "usage_limit": None, "is_soft_limit": False, "usage_reset_period": "MONTHLY", **fields}


def test_limits_add_up_and_one_unlimited_source_makes_it_unlimited() -> None:
    assert rules.combine("f", [source(usage_limit=100), source(usage_limit=50)]).usage_limit == 150
    assert rules.combine("f", [source(usage_limit=100), source()]).usage_limit is None
    disabled = rules.combine("f", [source(usage_limit=100), source(is_enabled=False)])
    assert disabled.usage_limit == 100 and disabled.is_enabled
    assert not rules.combine("f", [source(is_enabled=False)]).is_enabled


def test_soft_only_when_every_limited_source_is_soft() -> None:
    assert rules.combine("f", [source(usage_limit=1, is_soft_limit=True), source()]).is_soft_limit
    assert not rules.combine("f", [source(usage_limit=1, is_soft_limit=True), source(usage_limit=2)]).is_soft_limit


def test_the_usage_window_follows_the_subscription_grid() -> None:
    anchor = datetime(2026, 1, 31, 12, tzinfo=UTC)
    window = rules.usage_window("MONTHLY", anchor, datetime(2026, 3, 5, tzinfo=UTC))
    assert window is not None
    assert window.start <= datetime(2026, 3, 5, tzinfo=UTC) < window.end
    assert window.start.month == 2 and window.end.month == 3
    assert rules.usage_window("NEVER", anchor, datetime(2026, 3, 5, tzinfo=UTC)) is None
    daily = rules.usage_window("DAILY", anchor, datetime(2026, 2, 2, 13, tzinfo=UTC))
    assert daily is not None and (daily.start, daily.end) == (
        datetime(2026, 2, 2, 12, tzinfo=UTC),
        datetime(2026, 2, 3, 12, tzinfo=UTC),
    )


def test_percent_and_the_hard_limit_check() -> None:
    assert rules.usage_percent(Decimal(60), 100) == Decimal("60.00")
    assert rules.usage_percent(Decimal(1), 3) == Decimal("33.33")
    assert rules.usage_percent(Decimal(5), None) is None
    assert rules.usage_percent(Decimal(1), 0) == Decimal(100)
    hard = rules.combine("f", [source(usage_limit=10)])
    assert rules.allowed(hard, Decimal(9), Decimal(1))
    assert not rules.allowed(hard, Decimal(9), Decimal(2))
    assert rules.allowed(rules.combine("f", [source(usage_limit=10, is_soft_limit=True)]), Decimal(50))
    assert not rules.allowed(rules.combine("f", [source(is_enabled=False)]), Decimal(0))
