"""The list envelope ``{"items", "pagination": {total, limit, offset[, next_cursor]}}``.

``next_cursor`` is present when more items follow the page: sent back as ``cursor`` (query or search body) it
gives the next page at the cost of one page, however deep (``store.listing``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from billing.store.listing import Page

T = TypeVar("T")


def page_out(result: Page, limit: int, offset: int, render: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The envelope of one page read by ``store.listing``."""
    pagination: dict[str, Any] = {"total": result.total, "limit": limit, "offset": offset}
    if result.next_cursor:
        pagination["next_cursor"] = result.next_cursor
    return {"items": [render(item) for item in result.items], "pagination": pagination}


def page[T](items: Sequence[T], limit: int, offset: int, render: Callable[[T], Any]) -> dict[str, Any]:
    window = items[offset : offset + limit]
    return {
        "items": [render(item) for item in window],
        "pagination": {"total": len(items), "limit": limit, "offset": offset},
    }
