"""The metering algebra against a brute-force oracle over raw events (property-based)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.domain import metering as m

BASE = datetime(2026, 1, 20, tzinfo=UTC)  # spans a month end, a leap-free February and ISO week edges
SPAN_MINUTES = 60 * 24 * 50


@st.composite
def scenario(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=0, max_value=40))
    cluster = draw(st.integers(min_value=0, max_value=SPAN_MINUTES))
    events = []
    for i in range(n):
        if draw(st.booleans()):
            minute = draw(st.integers(min_value=max(0, cluster - 90), max_value=min(SPAN_MINUTES, cluster + 90)))
        else:
            minute = draw(st.integers(min_value=0, max_value=SPAN_MINUTES))
        at = BASE + timedelta(minutes=minute, milliseconds=draw(st.integers(min_value=0, max_value=59_999)))
        value = Decimal(draw(st.integers(min_value=-1000, max_value=100_000))) / Decimal(100)
        events.append((at, f"e{i:03d}", value, draw(st.sampled_from(["a", "b", "c", "d"]))))
    lo = draw(st.integers(min_value=0, max_value=SPAN_MINUTES - 1))
    hi = draw(st.integers(min_value=lo + 1, max_value=SPAN_MINUTES))
    window = draw(st.sampled_from([None, *m.WINDOW_SIZES]))
    anchor = None
    if window == "MONTH" and draw(st.booleans()):
        anchor = datetime(
            2025, 1, draw(st.integers(1, 31)), draw(st.integers(0, 23)), draw(st.integers(0, 59)), tzinfo=UTC
        )
    return {
        "events": events,
        "start": BASE + timedelta(minutes=lo),
        "end": BASE + timedelta(minutes=hi),
        "window": window,
        "anchor": anchor,
    }


def oracle(kind: str, events: list, lo: datetime, hi: datetime, multiplier: Decimal = Decimal(3)) -> Decimal:
    inside = [e for e in events if lo <= e[0] < hi]
    values = [e[2] for e in inside]
    with localcontext() as ctx:
        ctx.prec = 60
        if kind == m.COUNT:
            return Decimal(len(inside))
        if kind == m.SUM:
            return sum(values, Decimal(0))
        if kind == m.SUM_WITH_MULTIPLIER:
            return sum(values, Decimal(0)) * multiplier
        if kind == m.AVG:
            return sum(values, Decimal(0)) / len(values) if values else Decimal(0)
        if kind == m.MAX:
            return max(values) if values else Decimal(0)
        if kind == m.LATEST:
            return max(inside, key=lambda e: (e[0], e[1]))[2] if inside else Decimal(0)
        if kind == m.COUNT_UNIQUE:
            return Decimal(len({e[3] for e in inside}))
        length = Decimal(m.epoch_ms(hi) - m.epoch_ms(lo))
        return sum((e[2] * (m.epoch_ms(hi) - m.epoch_ms(e[0])) / length for e in inside), Decimal(0))


def meter_for(kind: str) -> m.Meter:
    return m.Meter(id="meter_x", event_name="api", aggregation=kind, field="v", multiplier=Decimal(3))


def cells_from(meter: m.Meter, events: list) -> dict[m.Bucket, m.Cell]:
    cells: dict[m.Bucket, m.Cell] = {}
    for at, event_id, value, tag in events:
        props = {"v": tag if meter.aggregation == m.COUNT_UNIQUE else str(value)}
        metered = m.metered_value(meter, props)
        for bucket in m.buckets_of(at):
            cell = m.event_cell(meter, metered, m.epoch_ms(at), event_id, bucket)
            cells[bucket] = cells[bucket].merge(cell) if bucket in cells else cell
    return cells


def close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= Decimal("1e-18") * max(Decimal(1), abs(b))


@pytest.mark.parametrize("kind", m.AGGREGATIONS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario())
def test_every_aggregation_and_window_matches_the_oracle(kind: str, case: dict) -> None:
    meter = meter_for(kind)
    cells = cells_from(meter, case["events"])
    usage = m.evaluate(meter, cells, case["start"], case["end"], case["window"], case["anchor"])
    assert close(usage.value, oracle(kind, case["events"], case["start"], case["end"])), kind
    if case["window"]:
        expected = m.windows(case["window"], case["start"], case["end"], case["anchor"])
        assert [label for label, _ in usage.windows] == [label for label, _, _ in expected]
        for (_, value), (_, lo, hi) in zip(usage.windows, expected, strict=True):
            assert close(value, oracle(kind, case["events"], lo, hi)), (kind, lo, hi)


@pytest.mark.parametrize("kind", m.AGGREGATIONS)
@settings(max_examples=40, deadline=None)
@given(case=scenario())
def test_reset_never_carries_everything_before_the_range(kind: str, case: dict) -> None:
    meter = meter_for(kind)
    cells = cells_from(meter, case["events"])
    month, history = m.history_cover(case["start"])
    before = set(history)
    carried = m.merge_all(c for b, c in cells.items() if b in before or (b[0] == m.MONTH and b[1] < month))
    usage = m.evaluate(meter, cells, case["start"], case["end"], None, None, carried)
    earliest = BASE - timedelta(days=400)
    if kind == m.WEIGHTED_SUM:
        prior = sum((e[2] for e in case["events"] if e[0] < case["start"]), Decimal(0))
        expected = oracle(kind, case["events"], case["start"], case["end"]) + prior
    else:
        expected = oracle(kind, case["events"], earliest, case["end"])
    assert close(usage.value, expected), kind


@settings(max_examples=200, deadline=None)
@given(
    lo=st.integers(min_value=0, max_value=SPAN_MINUTES * 4),
    length=st.integers(min_value=1, max_value=60 * 24 * 62),
    probes=st.lists(st.integers(min_value=-120, max_value=60 * 24 * 70), max_size=30),
)
def test_cover_is_an_exact_partition(lo: int, length: int, probes: list[int]) -> None:
    start = BASE + timedelta(minutes=lo)
    end = start + timedelta(minutes=length)
    buckets = m.cover(start, end)
    spans = [(b, m.next_bucket(r, b)) for r, b in buckets]
    for a, b in spans:
        assert start <= a < b <= end
    assert sum(((b - a) for a, b in spans), timedelta()) == end - start
    for probe in probes:
        at = start + timedelta(minutes=probe, seconds=30)
        hits = sum(1 for a, b in spans if a <= at < b)
        assert hits == (1 if start <= at < end else 0)


def test_a_month_is_covered_by_at_most_a_few_hundred_buckets() -> None:
    worst = 0
    start = datetime(2026, 3, 1, 0, 1, tzinfo=UTC)
    for shift in range(0, 60 * 24, 37):
        lo = start + timedelta(minutes=shift)
        worst = max(worst, len(m.cover(lo, lo + timedelta(days=31) - timedelta(minutes=2))))
    assert worst <= 31 + 2 * 23 + 2 * 59


def test_windows_weeks_start_on_monday_and_months_clamp_the_anchor() -> None:
    weeks = m.windows("WEEK", datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC))
    assert [w[0].weekday() for w in weeks] == [0, 0, 0]
    assert weeks[0][0] == datetime(2026, 3, 2, tzinfo=UTC) and weeks[0][1] == datetime(2026, 3, 4, tzinfo=UTC)
    anchor = datetime(2025, 1, 31, 12, 30, 45, tzinfo=UTC)
    months = m.windows("MONTH", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), anchor)
    assert [w[0] for w in months] == [
        datetime(2025, 12, 31, 12, 30, tzinfo=UTC),
        datetime(2026, 1, 31, 12, 30, tzinfo=UTC),
        datetime(2026, 2, 28, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 12, 30, tzinfo=UTC),
    ]
    calendar = m.windows("MONTH", datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert [w[0].month for w in calendar] == [1, 2]


def test_metered_values_are_parsed_as_decimals_and_bad_ones_name_the_field() -> None:
    meter = meter_for(m.SUM)
    assert m.metered_value(meter, {"v": "1.25"}) == Decimal("1.25")
    assert m.metered_value(meter, {"v": 7}) == Decimal(7)
    for bad in ({}, {"v": "abc"}, {"v": True}, {"v": "1e400"}, {"v": "0.0000001"}, {"v": "NaN"}):
        with pytest.raises(m.FieldError, match="'v'"):
            m.metered_value(meter, bad)
    assert m.metered_value(meter_for(m.COUNT), {}) is None


def test_filters_compare_property_text() -> None:
    meter = m.Meter(id="x", event_name="api", aggregation=m.COUNT, filters=(("region", frozenset({"eu", "7"})),))
    assert m.matches(meter, "api", {"region": "eu"})
    assert m.matches(meter, "api", {"region": Decimal(7)})
    assert not m.matches(meter, "api", {"region": "us"})
    assert not m.matches(meter, "api", {})
    assert not m.matches(meter, "other", {"region": "eu"})
