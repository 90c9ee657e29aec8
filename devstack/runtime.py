"""Run handlers in-process, one environment per function, and count what is running."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from devstack import template as tpl
from devstack.events import LambdaContext
from devstack.loader import load_handler

log = logging.getLogger("devstack")


def reset_billing() -> None:
    """Make the shared package re-read the environment (settings) and rebuild its cached clients."""
    from billing import wiring
    from billing.settings import reset_settings

    reset_settings()
    wiring.reset()


class EnvironmentGate:
    """A readers/writer gate over ``os.environ``.

    Functions whose environment is the shared base run concurrently (readers). A function with an overlay
    (variables other functions set differently) runs alone with its overlay applied (writer), then the base
    is restored. Writers are preferred so they are not starved.
    """

    def __init__(self, on_change: Callable[[], None] = reset_billing) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._on_change = on_change

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, overlay: dict[str, str]) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        saved = {name: os.environ.get(name) for name in overlay}
        try:
            os.environ.update(overlay)
            self._on_change()
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._on_change()
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Runtime:
    """Invoke the template's functions in this process, as the Lambda runtime would."""

    def __init__(
        self, functions: dict[str, tpl.Function], overlays: dict[str, dict[str, str]], concurrency: int = 8
    ) -> None:
        self.functions = functions
        self.overlays = overlays
        self.gate = EnvironmentGate()
        # Lambda runs each invocation in its own sandbox; here they share one interpreter with the embedded AWS. More
        # handlers at once than this only slow each other and the embedded AWS down (one GIL) until AWS calls time
        # out; the rest wait for a slot, as requests wait for a free sandbox.
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._running = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def load_all(self) -> None:
        """Import every handler now (as Lambda's init phase would), so import errors show at startup."""
        for fn in self.functions.values():
            load_handler(fn.module_path, fn.attribute)

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke a function synchronously; its exception propagates (the caller maps it)."""
        fn = self.functions[logical_id]
        handler = load_handler(fn.module_path, fn.attribute)
        context = LambdaContext(
            function_name=logical_id,
            timeout_ms=int(fn.properties.get("Timeout", 3)) * 1000,
            memory_limit_in_mb=int(fn.properties.get("MemorySize", 128)),
        )
        overlay = self.overlays.get(logical_id)
        with self._lock:
            self._running += 1
        started = time.monotonic()
        try:
            with self._slots:
                started = time.monotonic()
                with self.gate.exclusive(overlay) if overlay else self.gate.shared():
                    return handler(event, context)
        finally:
            elapsed = time.monotonic() - started
            if elapsed * 1000 > context.timeout_ms:
                log.warning("%s ran %.1fs, longer than its %ss timeout", logical_id, elapsed, context.timeout_ms / 1000)
            with self._lock:
                self._running -= 1
                self._idle.notify_all()
