"""RFC 3339 timestamps in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """Render as RFC 3339 UTC with a ``Z`` suffix (microseconds kept only when present)."""
    value = value.astimezone(UTC)
    # The year is zero-padded to four digits by hand: strftime's %Y does not pad years before 1000 on Linux.
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        return f"{text}.{value.microsecond:06d}Z"
    return f"{text}Z"


def parse_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
