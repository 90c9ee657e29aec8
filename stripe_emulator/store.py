"""State: accounts (one per secret key), objects by id, newest-first listing, expansion, the clock."""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from stripe_emulator.errors import invalid

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class Clock:
    """Wall-clock seconds plus an offset that tests move forward (`advance`)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.changed = threading.Condition()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self.changed:
            self.offset += seconds
            self.changed.notify_all()


class Account:
    """Everything one secret key sees: its objects, events, webhook endpoints and idempotency records."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.id = "acct_" + new_id("", 16)
        self.objects: dict[str, dict[str, Any]] = {}
        self.order: dict[str, int] = {}
        self.seq = 0
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.invoice_sequence = 0
        self.livemode = api_key.startswith(("sk_live_", "rk_live_"))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        if "livemode" in obj:
            obj["livemode"] = self.livemode
        if obj["id"] not in self.order:
            self.seq += 1
            self.order[obj["id"]] = self.seq
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str, kind: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(object_id)
        if obj is None or (kind is not None and obj.get("object") != kind):
            return None
        return obj

    def all(self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Objects of a kind, newest first (creation time, then creation order)."""
        items = [o for o in self.objects.values() if o.get("object") == kind and not o.get("deleted")]
        if where is not None:
            items = [o for o in items if where(o)]
        items.sort(key=lambda o: (o.get("created", 0), self.order[o["id"]]), reverse=True)
        return items


def as_int(value: Any, param: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise invalid(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")


def as_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid(f"Invalid boolean: {value}", param=param)


def created_filter(params: dict[str, Any], key: str = "created") -> Callable[[dict[str, Any]], bool]:
    spec = params.get(key)
    if spec is None:
        return lambda _o: True
    if isinstance(spec, str):
        exact = as_int(spec, key)
        return lambda o: o.get(key) == exact
    if not isinstance(spec, dict):
        raise invalid(f"Invalid {key}", param=key)
    bounds = {op: as_int(v, f"{key}[{op}]") for op, v in spec.items()}
    for op in bounds:
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid(f"Received unknown parameter: {key}[{op}]", param=f"{key}[{op}]", code="parameter_unknown")

    def keep(o: dict[str, Any]) -> bool:
        v = o.get(key, 0)
        return (
            ("gt" not in bounds or v > bounds["gt"])
            and ("gte" not in bounds or v >= bounds["gte"])
            and ("lt" not in bounds or v < bounds["lt"])
            and ("lte" not in bounds or v <= bounds["lte"])
        )

    return keep


def paginate(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """Stripe list object over newest-first items with `limit`, `starting_after` and `ending_before`."""
    limit = as_int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be an integer between 1 and 100.", param="limit")
    ids = [o["id"] for o in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid("You may only specify one of these parameters: ending_before, starting_after.")
    if after:
        if after not in ids:
            raise invalid(f"No such object: '{after}'", param="starting_after", code="resource_missing")
        start = ids.index(after) + 1
        page, has_more = items[start : start + limit], len(items) > start + limit
    elif before:
        if before not in ids:
            raise invalid(f"No such object: '{before}'", param="ending_before", code="resource_missing")
        end = ids.index(before)
        page, has_more = items[max(0, end - limit) : end], end - limit > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def expand(account: Account, obj: Any, paths: Iterable[str]) -> Any:
    """Replace the ids named by dotted `paths` with (copies of) their objects, as `expand[]` does."""
    result = copy.deepcopy(obj)
    for path in paths:
        result = _expand_path(account, result, path.split("."), 0)
    return result


def _expand_path(account: Account, node: Any, parts: list[str], depth: int) -> Any:
    if depth >= 4:
        raise invalid("You cannot expand more than 4 levels of a property.", param="expand")
    if not parts:
        if isinstance(node, str):
            target = account.objects.get(node)
            return copy.deepcopy(target) if target is not None else node
        return node
    if isinstance(node, str):
        target = account.objects.get(node)
        node = copy.deepcopy(target) if target is not None else node
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        if head == "data" and isinstance(node.get("data"), list):
            node["data"] = [_expand_path(account, item, rest, depth) for item in node["data"]]
            return node
        if head not in node:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        node[head] = _expand_path(account, node[head], rest, depth + 1)
    return node


def strip_private(obj: Any) -> Any:
    """Drop emulator-internal keys (prefixed with `_`) before an object leaves the emulator."""
    if isinstance(obj, dict):
        return {k: strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [strip_private(v) for v in obj]
    return obj
