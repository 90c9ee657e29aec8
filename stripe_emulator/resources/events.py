"""Events and webhook endpoints."""

from __future__ import annotations

import re
import secrets

from stripe_emulator.errors import invalid
from stripe_emulator.resources.base import (
    Obj,
    Params,
    check,
    merge_metadata,
    text,
)
from stripe_emulator.resources.invoice_items import InvoiceItems
from stripe_emulator.store import Account, as_bool, new_id, paginate


class Events(InvoiceItems):
    def event_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"created", "delivery_success", "ending_before", "limit", "starting_after", "type", "types"})
        kind = params.get("type")
        types = params.get("types")
        if kind and types:
            raise invalid("You may only specify one of these parameters: type, types.")

        def wanted(e: Obj) -> bool:
            if kind:
                return bool(e["type"] == kind or (kind.endswith(".*") and e["type"].startswith(kind[:-1])))
            if types:
                return e["type"] in types
            return True

        return self.listing(acct, "event", params, "/v1/events", wanted)

    def event_retrieve(self, acct: Account, params: Params, eid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, eid, "event", "event")

    def webhook_endpoint_create(self, acct: Account, params: Params) -> Obj:
        check(
            params,
            {"url", "enabled_events", "description", "metadata", "api_version", "connect"},
            ("url", "enabled_events"),
        )
        endpoint: Obj = {
            "id": new_id("we_"),
            "object": "webhook_endpoint",
            "api_version": params.get("api_version"),
            "application": None,
            "created": self.now(),
            "description": text(params, "description"),
            "enabled_events": [],
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "status": "enabled",
            "url": "",
            "_secret": "whsec_" + secrets.token_hex(16),
        }
        self._apply_endpoint(endpoint, params)
        acct.put(endpoint)
        return {**endpoint, "secret": endpoint["_secret"]}

    def _apply_endpoint(self, endpoint: Obj, params: Params) -> None:
        if "url" in params:
            url = str(params["url"])
            if not re.match(r"^https?://[^\s/]+", url):
                raise invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
            endpoint["url"] = url
        if "enabled_events" in params:
            events = params["enabled_events"]
            if not isinstance(events, list) or not events:
                raise invalid("Invalid array", param="enabled_events")
            for name in events:
                if name != "*" and not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", str(name)):
                    raise invalid(f"Invalid enabled_events: {name}", param="enabled_events")
            endpoint["enabled_events"] = list(events)
        if "description" in params:
            endpoint["description"] = text(params, "description")
        if "disabled" in params:
            endpoint["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))

    def webhook_endpoint_retrieve(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, set())
        return self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")

    def webhook_endpoint_update(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, {"url", "enabled_events", "description", "metadata", "disabled"})
        endpoint = self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")
        self._apply_endpoint(endpoint, params)
        return endpoint

    def webhook_endpoint_delete(self, acct: Account, params: Params, wid: str) -> Obj:
        check(params, set())
        self.fetch(acct, wid, "webhook_endpoint", "webhook endpoint")
        deleted = {"id": wid, "object": "webhook_endpoint", "deleted": True}
        acct.put(deleted)
        return deleted

    def webhook_endpoint_list(self, acct: Account, params: Params) -> Obj:
        check(params, {"ending_before", "limit", "starting_after"})
        return paginate(acct.all("webhook_endpoint"), params, "/v1/webhook_endpoints")
