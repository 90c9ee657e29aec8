"""Entitlements, the pure part: how a customer's entitlements to one feature combine, the window a usage limit
counts in, and how much of it is used (docs/entitlements.md). No I/O, no clock: callers pass ``now``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billing.domain.periods import Period, Schedule

RESET_PERIODS = ("DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "HALF_YEARLY", "ANNUAL", "NEVER")
NEVER = "NEVER"


@dataclass(frozen=True)
class Combined:
    """One feature's entitlement for a customer, from every active subscription that grants it (``additive``)."""

    feature_id: str
    is_enabled: bool
    usage_limit: int | None  # None: unlimited
    is_soft_limit: bool
    usage_reset_period: str | None
    static_values: tuple[str, ...]
    sources: tuple[Mapping[str, Any], ...]


def combine(feature_id: str, sources: Sequence[Mapping[str, Any]]) -> Combined:
    """Enabled if any source is; limits add up (unlimited if any enabled source is unlimited); soft only if every
    limited source is soft (one hard limit makes it hard); the reset period of the first source (they agree when
    they come from one plan; differing ones are listed in ``sources``)."""
    enabled = [s for s in sources if s.get("is_enabled")]
    limits = [s.get("usage_limit") for s in enabled]
    unlimited = any(limit is None for limit in limits)
    total = None if unlimited or not enabled else sum(int(limit) for limit in limits if limit is not None)
    limited = [s for s in enabled if s.get("usage_limit") is not None]
    soft = bool(limited) and all(bool(s.get("is_soft_limit")) for s in limited)
    statics = tuple(str(s["static_value"]) for s in enabled if s.get("static_value") not in (None, ""))
    reset = next((str(s["usage_reset_period"]) for s in enabled if s.get("usage_reset_period")), None)
    return Combined(feature_id, bool(enabled), total, soft, reset, statics, tuple(sources))


def usage_window(reset_period: str | None, anchor: datetime, now: datetime, tz: str = "UTC") -> Period | None:
    """The ``[start, end)`` a usage limit counts in at ``now``: the reset period's window on the subscription's grid
    (anchored at its start); ``NEVER`` (or none) counts from the anchor on, with no end (None)."""
    if reset_period in (None, NEVER) or now < anchor:
        return None
    return Schedule.of(anchor, reset_period, 1, "anniversary", tz).containing(now)


def usage_percent(used: Decimal, limit: int | None) -> Decimal | None:
    """Used as a percentage of the limit, two decimals (None when unlimited; a zero limit used at all is 100)."""
    if limit is None:
        return None
    if limit == 0:
        return Decimal(100) if used > 0 else Decimal(0)
    return (used * 100 / Decimal(limit)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def allowed(combined: Combined, used: Decimal, requested: Decimal = Decimal(0)) -> bool:
    """Whether ``requested`` more units fit: enabled, and unlimited, soft, or within the limit."""
    if not combined.is_enabled:
        return False
    if combined.usage_limit is None or combined.is_soft_limit:
        return True
    return used + requested <= combined.usage_limit
