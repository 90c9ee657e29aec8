"""The local stack's webhook receiver: a place to point outbound webhook endpoints at and look at what arrived.

``POST /_local/webhooks/receiver/<name>`` records the request (the ``webhook-*`` headers and the body) and answers
with the receiver's status (200 unless set); ``GET`` lists what arrived, oldest first; ``PUT`` with
``{"status": 503}`` makes it answer that status (an outage) until set back; ``DELETE`` forgets everything.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

KEEP = 1000


class Receivers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, deque[dict[str, Any]]] = {}
        self._status: dict[str, int] = {}

    def receive(self, name: str, headers: dict[str, str], body: bytes) -> int:
        status = self._status.get(name, 200)
        entry = {
            "received_at": time.time(),
            "answered": status,
            "headers": {k.lower(): v for k, v in headers.items() if k.lower().startswith("webhook-")},
            "body": body.decode("utf-8", "replace"),
        }
        with self._lock:
            self._received.setdefault(name, deque(maxlen=KEEP)).append(entry)
        return status

    def listing(self, name: str) -> dict[str, Any]:
        with self._lock:
            items = list(self._received.get(name, ()))
        return {"name": name, "status": self._status.get(name, 200), "requests": items}

    def configure(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            status = int(json.loads(body or b"{}").get("status", 200))
        except (ValueError, AttributeError):
            return 400, {"message": 'send {"status": <100..599>}'}
        if not 100 <= status <= 599:
            return 400, {"message": "status must be 100..599"}
        self._status[name] = status
        return 200, {"name": name, "status": status}

    def clear(self, name: str) -> None:
        with self._lock:
            self._received.pop(name, None)
        self._status.pop(name, None)
