"""Billing periods: anniversary anchors, month-end clamping, calendar boundaries in local time, DST."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.periods import (
    BillingCycle,
    BillingPeriod,
    Period,
    Schedule,
    next_period,
    period_containing,
    periods_between,
    proration_fraction,
)

NY = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=tz).astimezone(UTC)


def starts(schedule: Schedule, n: int) -> list[datetime]:
    return [schedule.boundary(i) for i in range(n)]


class TestAnniversaryMonthEnd:
    def test_jan_31_clamps_and_recovers(self) -> None:
        # Given an anchor on Jan 31 at 10:15 in a non-leap year
        schedule = Schedule.of(utc(2025, 1, 31, 10, 15), "MONTHLY")
        # Then the day is clamped in short months and comes back to 31 when the month has it
        assert starts(schedule, 7) == [
            utc(2025, 1, 31, 10, 15),
            utc(2025, 2, 28, 10, 15),
            utc(2025, 3, 31, 10, 15),
            utc(2025, 4, 30, 10, 15),
            utc(2025, 5, 31, 10, 15),
            utc(2025, 6, 30, 10, 15),
            utc(2025, 7, 31, 10, 15),
        ]

    def test_jan_31_in_a_leap_year_gives_feb_29(self) -> None:
        schedule = Schedule.of(utc(2024, 1, 31), BillingPeriod.MONTHLY)
        assert starts(schedule, 3) == [utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 31)]

    def test_feb_29_anchor_monthly(self) -> None:
        schedule = Schedule.of(utc(2024, 2, 29), "MONTHLY")
        assert starts(schedule, 4) == [utc(2024, 2, 29), utc(2024, 3, 29), utc(2024, 4, 29), utc(2024, 5, 29)]
        # a year on, February has 28 days
        assert schedule.boundary(12) == utc(2025, 2, 28)

    def test_feb_29_anchor_annual_comes_back_in_leap_years(self) -> None:
        schedule = Schedule.of(utc(2024, 2, 29, 12), "ANNUAL")
        assert starts(schedule, 5) == [
            utc(2024, 2, 29, 12),
            utc(2025, 2, 28, 12),
            utc(2026, 2, 28, 12),
            utc(2027, 2, 28, 12),
            utc(2028, 2, 29, 12),
        ]
        assert schedule.boundary(76) == utc(2100, 2, 28, 12)  # 2100 is not a leap year

    def test_mar_30_anchor(self) -> None:
        schedule = Schedule.of(utc(2023, 3, 30), "MONTHLY")
        assert [schedule.boundary(i) for i in (0, 11, 12)] == [utc(2023, 3, 30), utc(2024, 2, 29), utc(2024, 3, 30)]
        assert schedule.boundary(23) == utc(2025, 2, 28)

    def test_dec_31_anchor_crosses_the_year(self) -> None:
        schedule = Schedule.of(utc(2023, 12, 31, 23, 59, 59), "MONTHLY")
        assert starts(schedule, 4) == [
            utc(2023, 12, 31, 23, 59, 59),
            utc(2024, 1, 31, 23, 59, 59),
            utc(2024, 2, 29, 23, 59, 59),
            utc(2024, 3, 31, 23, 59, 59),
        ]

    def test_quarterly_and_half_yearly_from_month_end(self) -> None:
        quarterly = Schedule.of(utc(2023, 11, 30), "QUARTERLY")
        assert starts(quarterly, 4) == [utc(2023, 11, 30), utc(2024, 2, 29), utc(2024, 5, 30), utc(2024, 8, 30)]
        half = Schedule.of(utc(2023, 8, 31), "HALF_YEARLY")
        assert starts(half, 3) == [utc(2023, 8, 31), utc(2024, 2, 29), utc(2024, 8, 31)]

    def test_count_multiplies_the_unit(self) -> None:
        schedule = Schedule.of(utc(2025, 1, 31), "MONTHLY", count=2)
        assert starts(schedule, 3) == [utc(2025, 1, 31), utc(2025, 3, 31), utc(2025, 5, 31)]
        weekly = Schedule.of(utc(2025, 1, 1, 8), "WEEKLY", count=2)
        assert weekly.boundary(3) == utc(2025, 2, 12, 8)
        daily = Schedule.of(utc(2025, 1, 1, 8), "DAILY", count=3)
        assert daily.boundary(2) == utc(2025, 1, 7, 8)

    def test_computed_from_the_anchor_not_the_previous_end(self) -> None:
        # Adding a month to Feb 28 would give Mar 28; from the anchor it is Mar 31.
        schedule = Schedule.of(utc(2025, 1, 31), "MONTHLY")
        feb = schedule.containing(utc(2025, 2, 28, 5))
        assert next_period(utc(2025, 1, 31), feb, "MONTHLY").end == utc(2025, 4, 30)

    def test_wall_clock_time_kept_across_dst_in_the_customers_zone(self) -> None:
        # Given a daily anniversary at 09:00 New York time
        schedule = Schedule.of(local(NY, 2024, 3, 8, 9), "DAILY", tz="America/New_York")
        # Then every boundary is 09:00 local, and the day across the change is 23 hours long
        for i in range(5):
            assert schedule.boundary(i).astimezone(NY).hour == 9
        assert schedule.at_index(1).duration == timedelta(hours=23)
        assert schedule.at_index(2).duration == DAY


class TestCalendar:
    def test_monthly_first_period_is_partial(self) -> None:
        schedule = Schedule.of(utc(2025, 1, 15, 13), "MONTHLY", cycle="calendar")
        first = schedule.at_index(0)
        assert (first.start, first.end) == (utc(2025, 1, 15, 13), utc(2025, 2, 1))
        assert first.is_partial and first.nominal_start == utc(2025, 1, 1)
        assert starts(schedule, 4)[1:] == [utc(2025, 2, 1), utc(2025, 3, 1), utc(2025, 4, 1)]
        assert not schedule.at_index(1).is_partial

    def test_anchor_on_a_boundary_has_no_partial_period(self) -> None:
        schedule = Schedule.of(utc(2025, 4, 1), "QUARTERLY", cycle="calendar")
        assert starts(schedule, 3) == [utc(2025, 4, 1), utc(2025, 7, 1), utc(2025, 10, 1)]
        assert not schedule.at_index(0).is_partial

    @pytest.mark.parametrize(
        ("period", "anchor", "first_end", "second_end"),
        [
            ("DAILY", utc(2025, 5, 6, 17), utc(2025, 5, 7), utc(2025, 5, 8)),
            ("WEEKLY", utc(2025, 5, 7, 17), utc(2025, 5, 12), utc(2025, 5, 19)),  # Wednesday → Mondays
            ("MONTHLY", utc(2025, 5, 7), utc(2025, 6, 1), utc(2025, 7, 1)),
            ("QUARTERLY", utc(2025, 5, 7), utc(2025, 7, 1), utc(2025, 10, 1)),
            ("HALF_YEARLY", utc(2025, 5, 7), utc(2025, 7, 1), utc(2026, 1, 1)),
            ("ANNUAL", utc(2025, 5, 7), utc(2026, 1, 1), utc(2027, 1, 1)),
        ],
    )
    def test_boundaries_per_period(
        self, period: str, anchor: datetime, first_end: datetime, second_end: datetime
    ) -> None:
        schedule = Schedule.of(anchor, period, cycle=BillingCycle.CALENDAR)
        assert schedule.boundary(1) == first_end
        assert schedule.boundary(2) == second_end

    def test_count_after_the_partial_period(self) -> None:
        schedule = Schedule.of(utc(2025, 2, 15), "MONTHLY", count=3, cycle="calendar")
        assert starts(schedule, 4) == [utc(2025, 2, 15), utc(2025, 3, 1), utc(2025, 6, 1), utc(2025, 9, 1)]
        assert schedule.at_index(0).nominal_start == utc(2024, 12, 1)

    def test_boundaries_are_local_midnights(self) -> None:
        # Given a Tokyo customer (UTC+9) starting on Jan 15 local
        tokyo = ZoneInfo("Asia/Tokyo")
        schedule = Schedule.of(local(tokyo, 2025, 1, 15, 10), "MONTHLY", cycle="calendar", tz="Asia/Tokyo")
        # Then Feb 1 00:00 Tokyo is Jan 31 15:00 UTC
        assert schedule.boundary(1) == utc(2025, 1, 31, 15)

    def test_new_york_days_are_23_and_25_hours_across_dst(self) -> None:
        spring = Schedule.of(local(NY, 2024, 3, 9), "DAILY", cycle="calendar", tz="America/New_York")
        assert [spring.at_index(i).duration for i in range(3)] == [DAY, timedelta(hours=23), DAY]
        assert spring.boundary(1) == utc(2024, 3, 10, 5) and spring.boundary(2) == utc(2024, 3, 11, 4)
        autumn = Schedule.of(local(NY, 2024, 11, 2), "DAILY", cycle="calendar", tz="America/New_York")
        assert [autumn.at_index(i).duration for i in range(3)] == [DAY, timedelta(hours=25), DAY]

    def test_monthly_across_dst_keeps_local_midnight(self) -> None:
        schedule = Schedule.of(local(NY, 2024, 2, 1), "MONTHLY", cycle="calendar", tz="America/New_York")
        assert schedule.boundary(1) == utc(2024, 3, 1, 5)  # EST
        assert schedule.boundary(2) == utc(2024, 4, 1, 4)  # EDT
        assert schedule.at_index(1).duration == timedelta(days=31) - HOUR

    def test_midnight_skipped_by_dst_starts_the_day_at_the_jump(self) -> None:
        # Santiago moved its clocks from 00:00 to 01:00 on 2024-09-08: that day starts at 01:00 local.
        santiago = ZoneInfo("America/Santiago")
        schedule = Schedule.of(local(santiago, 2024, 9, 7, 12), "DAILY", cycle="calendar", tz=santiago)
        boundary = schedule.boundary(1)
        assert boundary == utc(2024, 9, 8, 4)
        assert boundary.astimezone(santiago).hour == 1
        assert schedule.at_index(0).duration == timedelta(hours=12)
        assert schedule.at_index(1).duration == timedelta(hours=23)  # 01:00 to the next midnight


class TestLookups:
    def test_period_containing_uses_half_open_periods(self) -> None:
        anchor = utc(2025, 1, 31)
        at_boundary = period_containing(anchor, utc(2025, 2, 28), "MONTHLY")
        assert (at_boundary.index, at_boundary.start) == (1, utc(2025, 2, 28))
        just_before = period_containing(anchor, utc(2025, 2, 28) - timedelta(microseconds=1), "MONTHLY")
        assert just_before.index == 0

    def test_far_in_the_future(self) -> None:
        found = period_containing(utc(2020, 1, 31), utc(2095, 6, 15), "MONTHLY")
        assert found.contains(utc(2095, 6, 15))
        assert found.start == utc(2095, 5, 31) and found.index == 904

    def test_before_the_anchor_is_refused(self) -> None:
        with pytest.raises(ValueError, match="precedes"):
            period_containing(utc(2025, 1, 1), utc(2024, 12, 31), "MONTHLY")

    def test_catch_up_three_missed_periods_in_order(self) -> None:
        anchor = utc(2025, 1, 31)
        missed = periods_between(anchor, utc(2025, 2, 28), utc(2025, 5, 31, 1), "MONTHLY")
        assert [(p.start, p.end) for p in missed] == [
            (utc(2025, 2, 28), utc(2025, 3, 31)),
            (utc(2025, 3, 31), utc(2025, 4, 30)),
            (utc(2025, 4, 30), utc(2025, 5, 31)),
        ]
        assert [p.index for p in missed] == [1, 2, 3]

    def test_catch_up_excludes_open_and_already_invoiced_periods(self) -> None:
        anchor = utc(2025, 1, 1)
        assert periods_between(anchor, utc(2025, 3, 1), utc(2025, 3, 31, 23), "MONTHLY") == []
        assert periods_between(anchor, utc(2025, 3, 1), utc(2025, 2, 1), "MONTHLY") == []
        assert len(periods_between(anchor, anchor, utc(2030, 1, 1), "DAILY", limit=10)) == 10

    def test_catch_up_from_the_anchor_includes_the_first_period(self) -> None:
        got = periods_between(utc(2025, 1, 15), utc(2025, 1, 15), utc(2025, 3, 1), "MONTHLY", cycle="calendar")
        assert [p.end for p in got] == [utc(2025, 2, 1), utc(2025, 3, 1)]

    def test_proration_of_the_partial_calendar_month(self) -> None:
        first = Schedule.of(utc(2025, 4, 16), "MONTHLY", cycle="calendar").at_index(0)
        assert proration_fraction(first.start, first.end, first) == Decimal(15) / Decimal(30)
        assert proration_fraction(utc(2025, 1, 1), utc(2026, 1, 1), first) == 1  # clipped to the whole month
        assert proration_fraction(first.end, first.end + DAY, first) == 0

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"period": "FORTNIGHTLY"}, "billing period"),
            ({"period": "ONETIME"}, "billing period"),
            ({"count": 0}, "count"),
            ({"cycle": "lunar"}, "billing cycle"),
            ({"tz": "Mars/Olympus_Mons"}, "unknown timezone"),
            ({"tz": ""}, "timezone"),
        ],
    )
    def test_bad_inputs_are_value_errors(self, kwargs: dict[str, object], message: str) -> None:
        args: dict[str, object] = {"period": "MONTHLY", "count": 1, "cycle": "anniversary", "tz": None} | kwargs
        with pytest.raises(ValueError, match=message):
            Schedule.of(utc(2025, 1, 1), **args)  # type: ignore[arg-type]

    def test_naive_datetimes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Schedule.of(datetime(2025, 1, 1), "MONTHLY")

    def test_output_is_utc_whatever_the_input_offset(self) -> None:
        anchor = datetime(2025, 1, 31, 9, tzinfo=timezone(timedelta(hours=5)))
        found = period_containing(anchor, utc(2025, 3, 1), "MONTHLY")
        assert found.start.tzinfo is UTC and found.end.tzinfo is UTC


# -- properties ---------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "America/Santiago",
    "Pacific/Chatham",
]
# (min, max) length of one whole unit, before allowing for a daylight-saving shift.
UNIT_BOUNDS = {
    BillingPeriod.DAILY: (1, 1),
    BillingPeriod.WEEKLY: (7, 7),
    BillingPeriod.MONTHLY: (28, 31),
    BillingPeriod.QUARTERLY: (89, 92),
    BillingPeriod.HALF_YEARLY: (181, 184),
    BillingPeriod.ANNUAL: (365, 366),
}

anchors = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
schedules = st.builds(
    Schedule.of,
    anchor=anchors,
    period=st.sampled_from(list(BillingPeriod)),
    count=st.integers(min_value=1, max_value=4),
    cycle=st.sampled_from(list(BillingCycle)),
    tz=st.sampled_from(ZONES),
)


def _bounds(schedule: Schedule) -> tuple[timedelta, timedelta]:
    low, high = UNIT_BOUNDS[schedule.period]
    n = schedule.count
    months_per_unit = {BillingPeriod.QUARTERLY: 3, BillingPeriod.HALF_YEARLY: 6}.get(schedule.period, 0)
    if schedule.period is BillingPeriod.MONTHLY or months_per_unit:
        months = n * (months_per_unit or 1)
        low, high = months * 28, months * 31
        return timedelta(days=low) - 2 * HOUR, timedelta(days=high) + 2 * HOUR
    return timedelta(days=low * n) - 2 * HOUR, timedelta(days=high * n) + 2 * HOUR


class TestProperties:
    @settings(max_examples=150)
    @given(schedules, st.integers(min_value=0, max_value=40))
    def test_periods_tile_time(self, schedule: Schedule, first: int) -> None:
        periods = [schedule.at_index(i) for i in range(first, first + 6)]
        for before, after in itertools.pairwise(periods):
            assert before.end == after.start  # no gap, no overlap
            assert before.start < before.end
        assert all(p.start.tzinfo is UTC and p.end.tzinfo is UTC for p in periods)

    @settings(max_examples=150)
    @given(schedules, st.integers(min_value=0, max_value=30))
    def test_period_lengths_are_within_bounds(self, schedule: Schedule, index: int) -> None:
        low, high = _bounds(schedule)
        period = schedule.at_index(index)
        if period.is_partial:
            assert timedelta(0) < period.duration < high
            assert period.end - period.nominal_start >= low
        else:
            assert low <= period.duration <= high

    @settings(max_examples=150)
    @given(schedules, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)))
    def test_containing_finds_the_one_period(self, schedule: Schedule, offset: timedelta) -> None:
        at = schedule.anchor + offset
        period = schedule.containing(at)
        assert period.start <= at < period.end
        assert period == schedule.at_index(period.index)
        if period.index > 0:
            assert schedule.at_index(period.index - 1).end <= at

    @given(
        anchors,
        st.sampled_from([BillingPeriod.MONTHLY, BillingPeriod.QUARTERLY, BillingPeriod.ANNUAL]),
        st.integers(1, 3),
        st.integers(0, 60),
    )
    def test_anchor_day_is_kept_when_the_month_has_it(
        self, anchor: datetime, period: BillingPeriod, count: int, index: int
    ) -> None:
        boundary = Schedule.of(anchor, period, count).boundary(index)
        last_day = calendar.monthrange(boundary.year, boundary.month)[1]
        assert boundary.day == min(anchor.day, last_day)
        assert boundary.time() == anchor.time()

    @settings(max_examples=150)
    @given(
        anchors,
        st.sampled_from(list(BillingPeriod)),
        st.integers(1, 3),
        st.sampled_from(ZONES),
        st.integers(1, 40),
    )
    def test_calendar_boundaries_are_local_midnights(
        self, anchor: datetime, period: BillingPeriod, count: int, tz: str, index: int
    ) -> None:
        schedule = Schedule.of(anchor, period, count, "calendar", tz)
        boundary = schedule.boundary(index)
        zone = schedule.tz
        day = boundary.astimezone(zone).date()
        # The boundary is the first instant of its local day (midnight, or the jump past a skipped one).
        assert (boundary - timedelta(microseconds=1)).astimezone(zone).date() < day
        assert boundary.astimezone(zone).hour in (0, 1)
        match period:
            case BillingPeriod.WEEKLY:
                assert day.weekday() == 0
            case BillingPeriod.MONTHLY:
                assert day.day == 1
            case BillingPeriod.QUARTERLY:
                assert day.day == 1 and day.month in (1, 4, 7, 10)
            case BillingPeriod.HALF_YEARLY:
                assert day.day == 1 and day.month in (1, 7)
            case BillingPeriod.ANNUAL:
                assert (day.month, day.day) == (1, 1)
            case BillingPeriod.DAILY:
                pass

    @given(schedules, st.integers(0, 20), st.integers(0, 8))
    def test_catch_up_returns_consecutive_closed_periods(self, schedule: Schedule, skip: int, n: int) -> None:
        since = schedule.boundary(skip)
        until = schedule.boundary(skip + n) + timedelta(seconds=1)
        got = schedule.closed_between(since, until)
        assert [p.index for p in got] == list(range(skip, skip + n))
        assert all(isinstance(p, Period) and p.end <= until for p in got)
