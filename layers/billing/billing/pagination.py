"""Offset pagination with the list envelope ``{"items", "pagination": {total, limit, offset}}``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def page[T](items: Sequence[T], limit: int, offset: int, render: Callable[[T], Any]) -> dict[str, Any]:
    window = items[offset : offset + limit]
    return {
        "items": [render(item) for item in window],
        "pagination": {"total": len(items), "limit": limit, "offset": offset},
    }
