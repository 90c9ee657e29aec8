"""Stripe's form encoding: `a[b][c]=v`, `a[0][b]=v`, `a[]=v`, decoded into nested dicts and lists of strings."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    pass


def decode(body: str) -> dict[str, Any]:
    """Decode a query string or form body into nested dicts; dicts keyed 0..n-1 become lists."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match:
            raise FormError(f"Invalid parameter name: {raw_key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(_next_index(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result: dict[str, Any] = _listify(root, parent="")
    return result


def _next_index(node: dict[str, Any]) -> int:
    return len([k for k in node if k.isdigit()])


def _listify(value: Any, parent: str) -> Any:
    if not isinstance(value, dict):
        return value
    out = {k: _listify(v, k) for k, v in value.items()}
    if out and parent != "metadata" and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out
