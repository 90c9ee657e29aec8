"""Metering math: meter matching, per-bucket cells and their algebra, windows and exact bucket covers.

Pure: no I/O, no clock, no AWS. Times are UTC ``datetime`` values; event times are whole milliseconds.

Counters are kept at four resolutions (``MO`` calendar month, ``DY`` day, ``HR`` hour, ``MI`` minute, all UTC).
Any minute-aligned range is covered exactly by a set of those buckets (``cover``), so every window size is
composed exactly, and a one-month range needs at most about 200 buckets whatever the number of events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COUNT = "COUNT"
SUM = "SUM"
AVG = "AVG"
MAX = "MAX"
LATEST = "LATEST"
COUNT_UNIQUE = "COUNT_UNIQUE"
SUM_WITH_MULTIPLIER = "SUM_WITH_MULTIPLIER"
WEIGHTED_SUM = "WEIGHTED_SUM"
AGGREGATIONS = (COUNT, SUM, AVG, MAX, LATEST, COUNT_UNIQUE, SUM_WITH_MULTIPLIER, WEIGHTED_SUM)
NUMERIC = frozenset({SUM, AVG, MAX, LATEST, SUM_WITH_MULTIPLIER, WEIGHTED_SUM})
SUMMED = frozenset({SUM, AVG, SUM_WITH_MULTIPLIER, WEIGHTED_SUM})
EXTREMA = frozenset({MAX, LATEST})

# Bounds on metered numbers, so that every stored counter stays inside DynamoDB's 38 significant digits.
MAX_ABS_VALUE = Decimal(10) ** 15
MAX_DECIMAL_PLACES = 6

MONTH, DAY, HOUR, MINUTE = "MO", "DY", "HR", "MI"
RESOLUTIONS = (MONTH, DAY, HOUR, MINUTE)  # coarse to fine
_FIXED = {DAY: timedelta(days=1), HOUR: timedelta(hours=1), MINUTE: timedelta(minutes=1)}

WINDOW_SIZES = ("MINUTE", "15MIN", "30MIN", "HOUR", "3HOUR", "6HOUR", "12HOUR", "DAY", "WEEK", "MONTH")
_WINDOW_LENGTH = {
    "MINUTE": timedelta(minutes=1),
    "15MIN": timedelta(minutes=15),
    "30MIN": timedelta(minutes=30),
    "HOUR": timedelta(hours=1),
    "3HOUR": timedelta(hours=3),
    "6HOUR": timedelta(hours=6),
    "12HOUR": timedelta(hours=12),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(weeks=1),
}


# -- meters ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Meter:
    id: str
    event_name: str
    aggregation: str
    field: str | None = None
    multiplier: Decimal | None = None
    filters: tuple[tuple[str, frozenset[str]], ...] = ()
    reset_never: bool = False
    active: bool = True
    name: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Meter:
        agg = record.get("aggregation") or {}
        filters = tuple(
            (str(f["key"]), frozenset(str(v) for v in f.get("values") or ()))
            for f in record.get("filters") or ()
            if f.get("values")
        )
        multiplier = agg.get("multiplier")
        return cls(
            id=str(record["id"]),
            event_name=str(record["event_name"]),
            aggregation=str(agg.get("type", COUNT)).upper(),
            field=agg.get("field") or None,
            multiplier=Decimal(str(multiplier)) if multiplier is not None else None,
            filters=filters,
            reset_never=str(record.get("reset_usage", "BILLING_PERIOD")).upper() == "NEVER",
            active=record.get("status", "published") == "published",
            name=str(record.get("name") or ""),
        )


def property_text(value: Any) -> str:
    """The text a filter compares: strings as sent, numbers in their plain decimal form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def matches(meter: Meter, event_name: str, properties: Mapping[str, Any]) -> bool:
    """An event matches a meter when the names agree and every filter's key holds one of its values."""
    if meter.event_name != event_name:
        return False
    for key, values in meter.filters:
        if key not in properties or property_text(properties[key]) not in values:
            return False
    return True


class FieldError(ValueError):
    """The metered property of an event is missing or unusable for the meter's aggregation."""


def parse_number(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise FieldError("must be a number or a numeric string")
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise FieldError(f"{value!r} is not numeric") from None
    else:
        raise FieldError("must be a number or a numeric string")
    if not number.is_finite():
        raise FieldError("must be a finite number")
    if abs(number) >= MAX_ABS_VALUE:
        raise FieldError(f"must be smaller than {MAX_ABS_VALUE:f} in absolute value")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise FieldError(f"has more than {MAX_DECIMAL_PLACES} decimal places")
    return number


def metered_value(meter: Meter, properties: Mapping[str, Any]) -> Decimal | str | None:
    """The value an event gives a meter: a Decimal, a string (COUNT_UNIQUE) or None (COUNT)."""
    if meter.aggregation == COUNT:
        return None
    name = meter.field or ""
    if name not in properties or properties[name] is None:
        raise FieldError(f"property {name!r} is required by meter {meter.id} ({meter.aggregation})")
    raw = properties[name]
    if meter.aggregation == COUNT_UNIQUE:
        if isinstance(raw, dict | list):
            raise FieldError("must be a string or a number")
        return property_text(raw)
    try:
        return parse_number(raw)
    except FieldError as err:
        raise FieldError(f"property {name!r} {err} (meter {meter.id}, {meter.aggregation})") from None


# -- time ------------------------------------------------------------------------------------------
def epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def truncate_ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + at.month - 1 + months
    return at.replace(year=index // 12, month=index % 12 + 1)


def floor_to(resolution: str, at: datetime) -> datetime:
    if resolution == MONTH:
        return _month_start(at)
    step = _FIXED[resolution]
    return EPOCH + ((at - EPOCH) // step) * step


def next_bucket(resolution: str, start: datetime) -> datetime:
    return _add_months(start, 1) if resolution == MONTH else start + _FIXED[resolution]


def ceil_to(resolution: str, at: datetime) -> datetime:
    floor = floor_to(resolution, at)
    return floor if floor == at else next_bucket(resolution, floor)


def bucket_key(resolution: str, start: datetime) -> str:
    """Sort key of a bucket: fixed width, so key order is time order within a resolution."""
    return f"{resolution}#{start:%Y%m%d%H%M}"


def parse_bucket_key(key: str) -> tuple[str, datetime]:
    resolution, stamp = key.split("#", 1)
    return resolution, datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)


Bucket = tuple[str, datetime]


def buckets_of(at: datetime) -> list[Bucket]:
    """The bucket of every resolution that an instant falls in."""
    return [(r, floor_to(r, at)) for r in RESOLUTIONS]


def cover(start: datetime, end: datetime, levels: Sequence[str] = RESOLUTIONS) -> list[Bucket]:
    """The fewest buckets whose union is exactly ``[start, end)``; both ends must be whole minutes."""
    if start >= end:
        return []
    if not levels:
        raise ValueError("range bounds must be whole minutes")
    resolution, finer = levels[0], levels[1:]
    first, last = ceil_to(resolution, start), floor_to(resolution, end)
    if first >= last:
        return cover(start, end, finer)
    middle: list[Bucket] = []
    at = first
    while at < last:
        middle.append((resolution, at))
        at = next_bucket(resolution, at)
    return [*cover(start, first, finer), *middle, *cover(last, end, finer)]


def history_cover(start: datetime) -> tuple[datetime, list[Bucket]]:
    """What lies before ``start``: whole months before ``month_start`` (read as one range) plus a cover."""
    month = _month_start(start)
    return month, cover(month, start)


def runs(buckets: Iterable[Bucket]) -> list[tuple[str, datetime, datetime]]:
    """Group buckets into contiguous runs per resolution: ``(resolution, first_start, last_start)``."""
    by_res: dict[str, list[datetime]] = {}
    for resolution, start in set(buckets):
        by_res.setdefault(resolution, []).append(start)
    out = []
    for resolution, starts in sorted(by_res.items()):
        starts.sort()
        first = prev = starts[0]
        for at in starts[1:]:
            if at != next_bucket(resolution, prev):
                out.append((resolution, first, prev))
                first = at
            prev = at
        out.append((resolution, first, prev))
    return out


# -- windows ---------------------------------------------------------------------------------------
def _anchored_month_start(at: datetime, anchor: datetime) -> datetime:
    def in_month(year: int, month: int) -> datetime:
        last_day = (_add_months(datetime(year, month, 1, tzinfo=UTC), 1) - timedelta(days=1)).day
        return datetime(year, month, min(anchor.day, last_day), anchor.hour, anchor.minute, tzinfo=UTC)

    candidate = in_month(at.year, at.month)
    if candidate > at:
        previous = _add_months(datetime(at.year, at.month, 1, tzinfo=UTC), -1)
        candidate = in_month(previous.year, previous.month)
    return candidate


def _next_anchored(start: datetime, anchor: datetime) -> datetime:
    following = _add_months(datetime(start.year, start.month, 1, tzinfo=UTC), 1)
    last_day = (_add_months(following, 1) - timedelta(days=1)).day
    return datetime(following.year, following.month, min(anchor.day, last_day), anchor.hour, anchor.minute, tzinfo=UTC)


def window_start(size: str, at: datetime, anchor: datetime | None = None) -> datetime:
    if size == "MONTH":
        return _month_start(at) if anchor is None else _anchored_month_start(at, floor_minute(anchor))
    if size == "WEEK":
        day = floor_to(DAY, at)
        return day - timedelta(days=day.weekday())
    step = _WINDOW_LENGTH[size]
    return EPOCH + ((at - EPOCH) // step) * step


def window_end(size: str, start: datetime, anchor: datetime | None = None) -> datetime:
    if size == "MONTH":
        return _add_months(start, 1) if anchor is None else _next_anchored(start, floor_minute(anchor))
    return start + _WINDOW_LENGTH[size]


def windows(
    size: str, start: datetime, end: datetime, anchor: datetime | None = None
) -> list[tuple[datetime, datetime, datetime]]:
    """``(label, from, to)`` for every window meeting ``[start, end)``; label is the window's own start and
    ``[from, to)`` is the window clipped to the range."""
    out = []
    at = window_start(size, start, anchor)
    while at < end:
        following = window_end(size, at, anchor)
        out.append((at, max(at, start), min(following, end)))
        at = following
    return out


def count_windows(size: str, start: datetime, end: datetime, anchor: datetime | None = None) -> int:
    """How many windows ``windows`` would produce (cheap for fixed sizes)."""
    if size in _WINDOW_LENGTH:
        first = window_start(size, start, anchor)
        return -(-(end - first) // _WINDOW_LENGTH[size])
    return len(windows(size, start, end, anchor))


# -- cells -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cell:
    """What one bucket holds for one meter. ``wsum`` is Σ v·(t - bucket start) in milliseconds."""

    count: int = 0
    sum: Decimal = Decimal(0)
    wsum: Decimal = Decimal(0)
    invalid: int = 0
    max: Decimal | None = None
    latest: tuple[int, str, Decimal] | None = None
    uniques: frozenset[str] = field(default_factory=frozenset)

    def merge(self, other: Cell) -> Cell:
        return Cell(
            count=self.count + other.count,
            sum=self.sum + other.sum,
            wsum=self.wsum + other.wsum,
            invalid=self.invalid + other.invalid,
            max=_max(self.max, other.max),
            latest=_later(self.latest, other.latest),
            uniques=self.uniques | other.uniques,
        )


EMPTY = Cell()


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _later(a: tuple[int, str, Decimal] | None, b: tuple[int, str, Decimal] | None) -> tuple[int, str, Decimal] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if (a[0], a[1]) >= (b[0], b[1]) else b


def event_cell(meter: Meter, value: Decimal | str | None, at_ms: int, event_id: str, bucket: Bucket) -> Cell:
    """One event's contribution to one bucket of one meter (``value`` from ``metered_value``)."""
    kind = meter.aggregation
    if kind == COUNT:
        return Cell(count=1)
    if kind == COUNT_UNIQUE:
        return Cell(count=1, uniques=frozenset({str(value)}))
    assert isinstance(value, Decimal)
    if kind == MAX:
        return Cell(count=1, max=value)
    if kind == LATEST:
        return Cell(count=1, latest=(at_ms, event_id, value))
    wsum = value * (at_ms - epoch_ms(bucket[1])) if kind == WEIGHTED_SUM else Decimal(0)
    return Cell(count=1, sum=value, wsum=wsum)


def merge_all(cells: Iterable[Cell]) -> Cell:
    out = EMPTY
    for cell in cells:
        out = out.merge(cell)
    return out


@dataclass(frozen=True, slots=True)
class Span:
    """A range's data: the merged cell and Σ v·t in absolute milliseconds (for WEIGHTED_SUM)."""

    cell: Cell
    vt: Decimal


def span(cells: Mapping[Bucket, Cell], buckets: Iterable[Bucket]) -> Span:
    merged = EMPTY
    vt = Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 80
        for bucket in buckets:
            cell = cells.get(bucket)
            if cell is None:
                continue
            merged = merged.merge(cell)
            vt += cell.wsum + cell.sum * epoch_ms(bucket[1])
    return Span(merged, vt)


def value_of(meter: Meter, data: Span, start: datetime, end: datetime, carried: Cell | None = None) -> Decimal:
    """The aggregate of ``[start, end)``; ``carried`` is everything before ``start`` (reset NEVER)."""
    cell = data.cell if carried is None else data.cell.merge(carried)
    kind = meter.aggregation
    with localcontext() as ctx:
        ctx.prec = 34
        if kind == COUNT:
            return Decimal(cell.count)
        if kind == SUM:
            return cell.sum
        if kind == SUM_WITH_MULTIPLIER:
            return cell.sum * (meter.multiplier if meter.multiplier is not None else Decimal(1))
        if kind == AVG:
            return cell.sum / cell.count if cell.count else Decimal(0)
        if kind == MAX:
            return cell.max if cell.max is not None else Decimal(0)
        if kind == LATEST:
            return cell.latest[2] if cell.latest is not None else Decimal(0)
        if kind == COUNT_UNIQUE:
            return Decimal(len(cell.uniques))
        if kind == WEIGHTED_SUM:
            length = epoch_ms(end) - epoch_ms(start)
            ctx.prec = 80
            weighted = (data.cell.sum * epoch_ms(end) - data.vt) / length if length > 0 else Decimal(0)
            if carried is not None:
                weighted += carried.sum
            ctx.prec = 34
            return +weighted
    raise ValueError(f"unknown aggregation {kind}")


@dataclass(frozen=True, slots=True)
class Usage:
    value: Decimal
    windows: list[tuple[datetime, Decimal]]
    invalid_events: int
    events: int = 0  # events of the range counted (history before it excluded)
    window_events: list[int] = field(default_factory=list)


# -- exact bounds: whole minutes from the counters, the partial edge minutes from the events -----------
Point = tuple[int, Cell]
"""One event's contribution to a meter: its time (ms since the epoch) and its cell (``event_cell`` of its minute)."""


def ceil_minute(at: datetime) -> datetime:
    return ceil_to(MINUTE, at)


def split(start: datetime, end: datetime) -> tuple[tuple[datetime, datetime] | None, list[tuple[datetime, datetime]]]:
    """``[start, end)`` (millisecond bounds) as whole minutes (read from the counters; None when there are none)
    and the partial edge ranges (read from the events): at most two, each shorter than a minute."""
    if start >= end:
        return None, []
    lo, hi = ceil_minute(start), floor_minute(end)
    if lo >= hi:
        return None, [(start, end)]
    edges = [r for r in ((start, lo), (hi, end)) if r[0] < r[1]]
    return (lo, hi), edges


def edge_ranges(start: datetime, end: datetime, *, history: bool = False) -> list[tuple[datetime, datetime]]:
    """The ranges whose events a usage query reads: the edges of ``[start, end)``, plus, for history (reset
    NEVER), the part of ``start``'s minute before ``start``. Window boundaries inside the range are whole minutes
    (epoch-aligned sizes, months and weeks at whole minutes, anchors floored to the minute), so only the range's
    own edges are partial."""
    _, edges = split(start, end)
    if history and floor_minute(start) < start:
        edges = [(floor_minute(start), start), *edges]
    return edges


def point(
    meter: Meter,
    *,
    counted: bool,
    properties: Mapping[str, Any],
    at_ms: int,
    event_id: str,
) -> Point | None:
    """What a stored event adds to a meter: what the counters hold for it (``counted``: the event was counted for
    the meter; an unusable property is an invalid event, as the back-fill counts it)."""
    if not counted:
        return None
    bucket = (MINUTE, floor_minute(from_ms(at_ms)))
    try:
        value = metered_value(meter, properties)
    except FieldError:
        return at_ms, Cell(invalid=1)
    return at_ms, event_cell(meter, value, at_ms, event_id, bucket)


def exact_span(cells: Mapping[Bucket, Cell], points: Sequence[Point], start: datetime, end: datetime) -> Span:
    """The data of ``[start, end)`` at millisecond bounds: the covering buckets of its whole minutes plus the
    points of its partial edges."""
    whole, edges = split(start, end)
    data = span(cells, cover(*whole)) if whole else Span(EMPTY, Decimal(0))
    merged, vt = data.cell, data.vt
    with localcontext() as ctx:
        ctx.prec = 80
        for lo, hi in edges:
            a, b = epoch_ms(lo), epoch_ms(hi)
            for at_ms, cell in points:
                if a <= at_ms < b:
                    merged = merged.merge(cell)
                    minute = at_ms - at_ms % 60_000
                    vt += cell.wsum + cell.sum * minute
    return Span(merged, vt)


def carried_before(
    cells: Mapping[Bucket, Cell], history: Iterable[Bucket], month: datetime, points: Sequence[Point], start: datetime
) -> Cell:
    """Everything before ``start`` (reset NEVER): months before ``month``, the cover of the partial month up to
    ``start``'s minute, and the events of that minute before ``start``."""
    before = set(history)
    out = merge_all(
        cell for bucket, cell in cells.items() if bucket in before or (bucket[0] == MONTH and bucket[1] < month)
    )
    lo, hi = epoch_ms(floor_minute(start)), epoch_ms(start)
    return out.merge(merge_all(cell for at_ms, cell in points if lo <= at_ms < hi))


def evaluate(
    meter: Meter,
    cells: Mapping[Bucket, Cell],
    start: datetime,
    end: datetime,
    window: str | None = None,
    anchor: datetime | None = None,
    carried: Cell | None = None,
    points: Sequence[Point] = (),
) -> Usage:
    """Usage of ``[start, end)`` (millisecond bounds) from bucket cells and the points of the partial edge minutes,
    per window when one is asked for.

    Each window's value covers only that window; ``carried`` (history before ``start``) enters the total.
    """
    total_span = exact_span(cells, points, start, end)
    total = value_of(meter, total_span, start, end, carried)
    results = []
    counts = []
    if window:
        for label, lo, hi in windows(window, start, end, anchor):
            data = exact_span(cells, points, lo, hi)
            results.append((label, value_of(meter, data, lo, hi)))
            counts.append(data.cell.count)
    invalid = total_span.cell.invalid + (carried.invalid if carried else 0)
    return Usage(total, results, invalid, total_span.cell.count, counts)


def needed_buckets(
    start: datetime, end: datetime, window: str | None = None, anchor: datetime | None = None
) -> set[Bucket]:
    def whole(lo: datetime, hi: datetime) -> list[Bucket]:
        minutes, _ = split(lo, hi)
        return cover(*minutes) if minutes else []

    needed = set(whole(start, end))
    if window:
        for _, lo, hi in windows(window, start, end, anchor):
            needed.update(whole(lo, hi))
    return needed
