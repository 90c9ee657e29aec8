"""Billing periods: anniversary and calendar cycles, DAILY to ANNUAL, times a count.

Every datetime in and out is timezone-aware; results are in UTC. Periods are half-open:
``[start, end)``, so one period's end is the next one's start and an instant belongs to exactly one.

Anniversary cycle
    Period ``k`` starts at the anchor (the subscription's original start) plus ``k x count`` units,
    always computed from the anchor, never by adding to the previous end. Months keep the anchor's day
    and clamp it at month end (Jan 31 → Feb 28, or Feb 29 in a leap year → Mar 31 → Apr 30 ...), and the
    anchor's time of day is kept. The arithmetic is done on the wall clock of ``tz`` (UTC by default), so
    a customer's 09:00 stays 09:00 across daylight-saving changes.

Calendar cycle
    Boundaries are the starts of local days, ISO weeks (Monday), months, quarters (Jan/Apr/Jul/Oct 1),
    half-years (Jan/Jul 1) and years in ``tz``. The first period runs from the anchor to the first
    boundary (a partial period; none when the anchor is itself a boundary); after it, every period is
    ``count`` whole units. A calendar day is therefore 23 or 25 hours long across a DST change.

Local times that do not exist (a DST gap) resolve to the instant the clock jumps to; local times that
occur twice resolve to the first occurrence (``fold=0``).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class BillingPeriod(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    HALF_YEARLY = "HALF_YEARLY"
    ANNUAL = "ANNUAL"


class BillingCycle(StrEnum):
    ANNIVERSARY = "anniversary"
    CALENDAR = "calendar"


# (months, days) in one unit of each period.
_UNITS: dict[BillingPeriod, tuple[int, int]] = {
    BillingPeriod.DAILY: (0, 1),
    BillingPeriod.WEEKLY: (0, 7),
    BillingPeriod.MONTHLY: (1, 0),
    BillingPeriod.QUARTERLY: (3, 0),
    BillingPeriod.HALF_YEARLY: (6, 0),
    BillingPeriod.ANNUAL: (12, 0),
}


@dataclass(frozen=True, slots=True)
class Period:
    """One billing period ``[start, end)`` in UTC.

    ``index`` counts periods from the anchor (0 is the first). ``nominal_start`` is where the period
    would have started had it been whole: it differs from ``start`` only for a partial first calendar
    period, and serves proration.
    """

    index: int
    start: datetime
    end: datetime
    nominal_start: datetime

    @property
    def is_partial(self) -> bool:
        return self.nominal_start != self.start

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def _zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str) or not tz.strip():
        raise ValueError("timezone must be an IANA name such as 'America/New_York'")
    name = tz.strip()
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {tz!r}: expected an IANA name such as 'America/New_York'") from None


def zone(tz: str | tzinfo | None) -> tzinfo:
    """The tzinfo for an IANA name (None or "UTC" gives UTC); ValueError for an unknown name."""
    return _zone(tz)


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _period(value: BillingPeriod | str) -> BillingPeriod:
    try:
        return BillingPeriod(str(value).upper())
    except ValueError:
        allowed = ", ".join(p.value for p in BillingPeriod)
        raise ValueError(f"unsupported billing period {value!r}: expected one of {allowed}") from None


def _cycle(value: BillingCycle | str) -> BillingCycle:
    try:
        return BillingCycle(str(value).lower())
    except ValueError:
        raise ValueError(f"unsupported billing cycle {value!r}: expected anniversary or calendar") from None


def _count(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("billing period count must be an integer of at least 1")
    return value


def _add_months(base: datetime, months: int, day: int) -> datetime:
    """Naive ``base`` moved by ``months``, with ``day`` clamped to the target month's length."""
    year, month0 = divmod(base.month - 1 + months, 12)
    year += base.year
    last = calendar.monthrange(year, month0 + 1)[1]
    return base.replace(year=year, month=month0 + 1, day=min(day, last))


def _to_utc(local: datetime, tz: tzinfo) -> datetime:
    """UTC instant of a naive local wall time (gaps jump forward, repeated times take the first)."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _local_floor(local: datetime, period: BillingPeriod) -> datetime:
    """The naive local start of the calendar unit containing ``local``."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    match period:
        case BillingPeriod.DAILY:
            return day
        case BillingPeriod.WEEKLY:
            return day - timedelta(days=day.weekday())
        case BillingPeriod.MONTHLY:
            return day.replace(day=1)
        case BillingPeriod.QUARTERLY:
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        case BillingPeriod.HALF_YEARLY:
            return day.replace(month=(day.month - 1) // 6 * 6 + 1, day=1)
        case BillingPeriod.ANNUAL:
            return day.replace(month=1, day=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The periods of one subscription: anchor, period type, count, cycle and timezone."""

    anchor: datetime
    period: BillingPeriod
    count: int
    cycle: BillingCycle
    tz: tzinfo

    @classmethod
    def of(
        cls,
        anchor: datetime,
        period: BillingPeriod | str,
        count: int = 1,
        cycle: BillingCycle | str = BillingCycle.ANNIVERSARY,
        tz: str | tzinfo | None = None,
    ) -> Schedule:
        return cls(_aware(anchor, "anchor"), _period(period), _count(count), _cycle(cycle), _zone(tz))

    # -- the grid -------------------------------------------------------------------------------

    @property
    def _step(self) -> tuple[int, int]:
        months, days = _UNITS[self.period]
        return months * self.count, days * self.count

    @property
    def _local_anchor(self) -> datetime:
        return self.anchor.astimezone(self.tz).replace(tzinfo=None)

    def _grid_base(self) -> tuple[datetime, int]:
        """(naive local base, index of the period starting at the base)."""
        local = self._local_anchor
        if self.cycle is BillingCycle.ANNIVERSARY:
            return local, 0
        floor = _local_floor(local, self.period)
        if _to_utc(floor, self.tz) == self.anchor:
            return floor, 0
        months, days = _UNITS[self.period]
        first = _add_months(floor, months, 1) if months else floor + timedelta(days=days)
        return first, 1

    def _shift(self, base: datetime, steps: int) -> datetime:
        months, days = self._step
        if months:
            return _add_months(base, months * steps, base.day)
        return base + timedelta(days=days * steps)

    def boundary(self, index: int) -> datetime:
        """Start of period ``index`` (the anchor for 0); the end of period ``index - 1``."""
        if index < 0:
            raise ValueError("period index must be non-negative")
        if index == 0:
            return self.anchor
        base, offset = self._grid_base()
        return _to_utc(self._shift(base, index - offset), self.tz)

    def _nominal_start(self, index: int) -> datetime:
        if index == 0 and self.cycle is BillingCycle.CALENDAR:
            base, offset = self._grid_base()
            if offset == 1:
                # The whole period that the partial first one is cut from: `count` units before the
                # first boundary, like every other period.
                return _to_utc(self._shift(base, -1), self.tz)
        return self.boundary(index)

    def at_index(self, index: int) -> Period:
        return Period(index, self.boundary(index), self.boundary(index + 1), self._nominal_start(index))

    # -- look-ups -------------------------------------------------------------------------------

    def _estimate(self, at: datetime) -> int:
        base, offset = self._grid_base()
        local = at.astimezone(self.tz).replace(tzinfo=None)
        months, days = self._step
        if months:
            elapsed = (local.year - base.year) * 12 + (local.month - base.month)
            guess = elapsed // months
        else:
            guess = (local.date() - base.date()).days // days
        return max(0, guess + offset)

    def index_at(self, at: datetime) -> int:
        """Index of the period containing ``at`` (which must not precede the anchor)."""
        at = _aware(at, "at")
        if at < self.anchor:
            raise ValueError("the instant precedes the subscription's anchor")
        index = self._estimate(at)
        while index > 0 and self.boundary(index) > at:
            index -= 1
        while self.boundary(index + 1) <= at:
            index += 1
        return index

    def containing(self, at: datetime) -> Period:
        return self.at_index(self.index_at(at))

    def following(self, current: Period) -> Period:
        return self.at_index(current.index + 1)

    def iter_from(self, index: int = 0) -> Iterator[Period]:
        while True:
            yield self.at_index(index)
            index += 1

    def closed_between(self, since: datetime, until: datetime, limit: int | None = None) -> list[Period]:
        """Periods that end after ``since`` and no later than ``until``, oldest first.

        With ``since`` the end of the last invoiced period and ``until`` the cut-off (now minus the
        grace period), these are the periods still to invoice. ``limit`` caps how many are returned.
        """
        since = max(_aware(since, "since"), self.anchor)
        until = _aware(until, "until")
        result: list[Period] = []
        if until <= since:
            return result
        for item in self.iter_from(self.index_at(since)):
            if item.end > until or (limit is not None and len(result) >= limit):
                break
            if item.end > since:
                result.append(item)
        return result


def period_containing(
    anchor: datetime,
    at: datetime,
    period: BillingPeriod | str,
    count: int = 1,
    cycle: BillingCycle | str = BillingCycle.ANNIVERSARY,
    tz: str | tzinfo | None = None,
) -> Period:
    """The billing period that contains ``at``."""
    return Schedule.of(anchor, period, count, cycle, tz).containing(at)


def next_period(
    anchor: datetime,
    current: Period,
    period: BillingPeriod | str,
    count: int = 1,
    cycle: BillingCycle | str = BillingCycle.ANNIVERSARY,
    tz: str | tzinfo | None = None,
) -> Period:
    """The period right after ``current`` (its start is ``current.end``)."""
    return Schedule.of(anchor, period, count, cycle, tz).following(current)


def periods_between(
    anchor: datetime,
    since: datetime,
    until: datetime,
    period: BillingPeriod | str,
    count: int = 1,
    cycle: BillingCycle | str = BillingCycle.ANNIVERSARY,
    tz: str | tzinfo | None = None,
    limit: int | None = None,
) -> list[Period]:
    """Closed periods ending in ``(since, until]``, in order: the missed periods to catch up."""
    return Schedule.of(anchor, period, count, cycle, tz).closed_between(since, until, limit)


def proration_fraction(part_start: datetime, part_end: datetime, whole: Period) -> Decimal:
    """Share of the whole (nominal) period covered by ``[part_start, part_end)`` (28 significant digits).

    Measured in elapsed time against ``[whole.nominal_start, whole.end)``; the part is clipped to it.
    """
    start = max(_aware(part_start, "part_start"), whole.nominal_start)
    end = min(_aware(part_end, "part_end"), whole.end)
    total = whole.end - whole.nominal_start
    if end <= start:
        return Decimal(0)
    micro = timedelta(microseconds=1)
    return Decimal((end - start) // micro) / Decimal(total // micro)
