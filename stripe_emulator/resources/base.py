"""Shared parts of the endpoints: parameter checks, metadata, currencies, events, lookups and listing."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stripe_emulator import money
from stripe_emulator.errors import invalid, missing_param, no_such, unknown_param
from stripe_emulator.store import Account, created_filter, new_id, paginate, strip_private

if TYPE_CHECKING:
    from stripe_emulator.server import StripeEmulator

API_VERSION = "2020-08-27"
Obj = dict[str, Any]
Params = dict[str, Any]

NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. "
    "Please consider adding a default payment method."
)
LIVE_CARD = (
    "Your card was declined. Your request was in test mode, but used a non test (live) card. "
    "For a list of valid test cards, visit: https://stripe.com/docs/testing."
)
AUTH_REQUIRED = "Your card was declined. This transaction requires authentication."

COMMON = {"expand"}


def check(params: Params, allowed: set[str], required: tuple[str, ...] = ()) -> None:
    for key in params:
        if key not in allowed and key not in COMMON:
            raise unknown_param(key)
    for key in required:
        if params.get(key) in (None, ""):
            raise missing_param(key)


def text(params: Params, key: str, default: str | None = None) -> str | None:
    value = params.get(key, default)
    if value is None or value == "":
        return None if value == "" else default
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {value!r}", param=key)
    if len(value) > 5000:
        raise invalid(f"Invalid {key}: must be at most 5000 characters", param=key)
    return value


def merge_metadata(current: dict[str, str], value: Any) -> dict[str, str]:
    if value is None:
        return current
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", param="metadata")
    result = dict(current)
    for key, v in value.items():
        if len(key) > 40:
            raise invalid("Metadata keys can have up to 40 characters.", param=f"metadata[{key}]")
        if v == "":
            result.pop(key, None)
        elif not isinstance(v, str) or len(v) > 500:
            raise invalid("Metadata values can have up to 500 characters.", param=f"metadata[{key}]")
        else:
            result[key] = v
    if len(result) > 50:
        raise invalid("You can have up to 50 metadata keys.", param="metadata")
    return result


def currency_param(params: Params, key: str = "currency") -> str | None:
    value = params.get(key)
    if value is None:
        return None
    value = str(value).lower()
    if value not in money.KNOWN:
        raise invalid(f"Invalid currency: {value}. Stripe currently supports these currencies: ...", param=key)
    return value


def address(value: Any) -> Obj | None:
    if not isinstance(value, dict):
        return None
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return {k: (value.get(k) or None) for k in keys}


class Base:
    """State every resource shares: the emulator (clock, webhooks, settings) and the request context."""

    def __init__(self, emulator: StripeEmulator) -> None:
        self.emu = emulator
        self.ctx = threading.local()

    def now(self) -> int:
        return int(self.emu.clock.now())

    def emit(self, acct: Account, type_: str, obj: Obj, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": strip_private(copy.deepcopy(obj))}
        if previous:
            data["previous_attributes"] = strip_private(copy.deepcopy(previous))
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": getattr(self.ctx, "request_id", None),
                "idempotency_key": getattr(self.ctx, "idempotency_key", None),
            },
            "type": type_,
        }
        acct.put(event)
        event["pending_webhooks"] = self.emu.webhooks.publish(acct, strip_private(event))
        return event

    def emit_updated(self, acct: Account, type_: str, obj: Obj, before: Obj) -> None:
        previous = {k: v for k, v in before.items() if obj.get(k) != v and not k.startswith("_")}
        if previous:
            self.emit(acct, type_, obj, previous)

    def fetch(self, acct: Account, object_id: str, kind: str, label: str, param: str = "id") -> Obj:
        obj = acct.get(object_id, kind)
        if obj is None or obj.get("deleted"):
            raise no_such(label, object_id, param)
        return obj

    def listing(self, acct: Account, kind: str, params: Params, url: str, where: Callable[[Obj], bool]) -> Obj:
        filt = created_filter(params)
        return paginate(acct.all(kind, lambda o: where(o) and filt(o)), params, url)

    def base_url(self) -> str:
        return self.emu.public_url
