"""Millisecond bounds in the pure metering math: whole minutes from bucket cells plus the edge minutes' points equal a
brute-force aggregate over the events, for any start and end instant (seeded property test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import metering as m

BASE = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # ranges cross a day and a month
KINDS = ("COUNT", "SUM", "AVG", "MAX", "LATEST", "COUNT_UNIQUE", "WEIGHTED_SUM")


def brute(kind: str, events: list[tuple[int, str, Decimal]], lo: int, hi: int) -> Decimal:
    inside = [e for e in events if lo <= e[0] < hi]
    values = [e[2] for e in inside]
    with localcontext() as ctx:
        ctx.prec = 60
        if kind == "COUNT":
            return Decimal(len(inside))
        if kind == "SUM":
            return sum(values, Decimal(0))
        if kind == "AVG":
            return sum(values, Decimal(0)) / len(values) if values else Decimal(0)
        if kind == "MAX":
            return max(values, default=Decimal(0))
        if kind == "LATEST":
            last = max(inside, key=lambda e: (e[0], e[1]), default=None)
            return last[2] if last else Decimal(0)
        if kind == "COUNT_UNIQUE":
            return Decimal(len({str(v) for v in values}))
        return sum((v * (hi - t) / (hi - lo) for t, _, v in inside), Decimal(0))


def cells_of(meter: m.Meter, events: list[tuple[int, str, Decimal]]) -> dict[m.Bucket, m.Cell]:
    cells: dict[m.Bucket, m.Cell] = {}
    for at_ms, event_id, value in events:
        at = m.from_ms(at_ms)
        for bucket in m.buckets_of(at):
            cell = m.event_cell(
                meter, value if meter.aggregation != "COUNT_UNIQUE" else str(value), at_ms, event_id, bucket
            )
            cells[bucket] = cells[bucket].merge(cell) if bucket in cells else cell
    return cells


@st.composite
def cases(draw: st.DrawFn) -> dict:
    span = 3 * 60 * 60_000
    events = [
        (
            m.epoch_ms(BASE) + draw(st.integers(0, span)),
            f"e{i}",
            Decimal(draw(st.integers(-500, 5000))) / 10,
        )
        for i in range(draw(st.integers(0, 30)))
    ]
    # crowd some events onto minute boundaries and the range's own ends
    lo = m.epoch_ms(BASE) + draw(st.integers(0, span))
    hi = lo + draw(st.integers(1, span))
    for j, at in enumerate((lo, lo - 1, hi, hi - 1, lo - lo % 60_000, hi - hi % 60_000)):
        events.append((at, f"b{j}", Decimal(j)))
    return {"events": events, "lo": lo, "hi": hi, "window": draw(st.sampled_from([None, "MINUTE", "HOUR", "DAY"]))}


@settings(max_examples=80, derandomize=True, deadline=None)
@given(case=cases())
def test_millisecond_ranges_match_the_brute_force_aggregate(case):
    events, lo, hi = case["events"], case["lo"], case["hi"]
    start, end = m.from_ms(lo), m.from_ms(hi)
    edges = m.edge_ranges(start, end)
    # at most two partial edges, each shorter than a minute, or the whole range when it holds no whole minute
    assert len(edges) <= 2 and sum((b - a for a, b in edges), timedelta()) < timedelta(minutes=2)
    assert all(b - a < timedelta(minutes=1) for a, b in edges) or edges == [(start, end)]
    for kind in KINDS:
        field = None if kind == "COUNT" else "v"
        meter = m.Meter(id="m", event_name="x", aggregation=kind, field=field)
        cells = cells_of(meter, events)
        points = [
            p
            for at_ms, event_id, value in events
            if any(m.epoch_ms(a) <= at_ms < m.epoch_ms(b) for a, b in edges)
            and (p := m.point(meter, counted=True, properties={"v": value}, at_ms=at_ms, event_id=event_id))
        ]
        needed = m.needed_buckets(start, end, case["window"])
        got = m.evaluate(
            meter, {b: c for b, c in cells.items() if b in needed}, start, end, case["window"], points=points
        )
        expected = brute(kind, events, lo, hi)
        assert abs(got.value - expected) <= Decimal("1e-20") * max(1, abs(expected)), (kind, got.value, expected)
        assert got.events == len([e for e in events if lo <= e[0] < hi])
        if case["window"]:
            for (label, value), (_, a, b) in zip(got.windows, m.windows(case["window"], start, end), strict=True):
                want = brute(kind, events, m.epoch_ms(a), m.epoch_ms(b))
                assert abs(value - want) <= Decimal("1e-20") * max(1, abs(want)), (kind, label)


def test_split_keeps_whole_minutes_and_at_most_two_partial_edges():
    at = datetime(2026, 3, 10, 8, 15, 30, tzinfo=UTC)
    assert m.split(at, at + timedelta(seconds=10)) == (None, [(at, at + timedelta(seconds=10))])
    whole, edges = m.split(at, at + timedelta(minutes=2))
    assert whole == (datetime(2026, 3, 10, 8, 16, tzinfo=UTC), datetime(2026, 3, 10, 8, 17, tzinfo=UTC))
    assert edges == [(at, whole[0]), (whole[1], at + timedelta(minutes=2))]
    exact = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    assert m.split(exact, exact + timedelta(hours=1)) == ((exact, exact + timedelta(hours=1)), [])
    assert m.edge_ranges(at, at + timedelta(minutes=5), history=True)[0] == (
        datetime(2026, 3, 10, 8, 15, tzinfo=UTC),
        at,
    )
