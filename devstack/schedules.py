"""The template's schedules: ``rate(...)`` expressions run on their own; every schedule runs on demand.

``cron(...)`` and ``at(...)`` expressions are listed and can be run with ``POST /_local/schedules/{name}/run``
but are not run automatically.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.events import ACCOUNT, REGION
from devstack.stack import ScheduleSpec

log = logging.getLogger("devstack")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a ``rate(...)`` expression; ``None`` for ``cron``/``at``."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2)
    if value <= 0:
        raise ValueError(f"invalid rate expression {expression!r}")
    if (value == 1) != (not unit.endswith("s")):
        raise ValueError(
            f"invalid rate expression {expression!r}: use '1 {unit.rstrip('s')}' or 'N {unit.rstrip('s')}s'"
        )
    return value * _UNIT[unit.rstrip("s")]


def schedule_arn(spec: ScheduleSpec) -> str:
    if spec.kind == "Schedule":
        return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{spec.name}"
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{spec.name}"


def schedule_payload(spec: ScheduleSpec, now: datetime, attempt: int = 1) -> Any:
    """What the target receives.

    An EventBridge rule (``Schedule``) sends its ``Input`` or the "Scheduled Event" envelope. EventBridge
    Scheduler sends its ``Input`` with the ``<aws.scheduler.*>`` context attributes substituted, or ``{}``.
    """
    when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spec.kind == "Schedule":
        if spec.input is not None:
            return json.loads(spec.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": when,
            "region": REGION,
            "resources": [schedule_arn(spec)],
            "detail": {},
        }
    if spec.input is None:
        return {}
    text = (
        spec.input.replace("<aws.scheduler.schedule-arn>", schedule_arn(spec))
        .replace("<aws.scheduler.scheduled-time>", when)
        .replace("<aws.scheduler.execution-id>", str(uuid.uuid4()))
        .replace("<aws.scheduler.attempt-number>", str(attempt))
    )
    return json.loads(text) if spec.queue is None else text


@dataclass
class RunResult:
    ok: bool
    result: Any
    error: dict[str, str] | None
    duration_ms: int


class Scheduler:
    """Runs due ``rate`` schedules from one thread; ``run`` runs any schedule now."""

    def __init__(
        self,
        specs: list[ScheduleSpec],
        invoke: Callable[[str, Any], Any],
        send: Callable[[str, str], None],
        automatic: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.invoke = invoke
        self.send = send
        self.automatic = automatic
        self.clock = clock
        self.intervals = {s.name: rate_seconds(s.expression) for s in specs}
        start = clock()
        # As in AWS, a rate schedule first fires one interval after it is created.
        self.next_due: dict[str, float] = {
            name: start + interval
            for name, interval in self.intervals.items()
            if interval is not None and self.specs[name].enabled
        }
        self.runs: dict[str, int] = dict.fromkeys(self.specs, 0)
        self.last_run: dict[str, str | None] = dict.fromkeys(self.specs)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def find(self, name: str) -> ScheduleSpec | None:
        return self.specs.get(name)

    def describe(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for name, spec in self.specs.items():
            due = self.next_due.get(name) if self.automatic else None
            out.append(
                {
                    "name": name,
                    "type": spec.kind,
                    "expression": spec.expression,
                    "enabled": spec.enabled,
                    "runs_automatically": due is not None,
                    "next_run_in_seconds": None if due is None else max(0, round(due - now, 1)),
                    "target": {"function": spec.function}
                    if spec.function
                    else {"queue": spec.queue.name if spec.queue else None},
                    "input": spec.input,
                    "runs": self.runs[name],
                    "last_run": self.last_run[name],
                }
            )
        return out

    def run(self, name: str) -> RunResult:
        spec = self.specs[name]
        now = datetime.now(UTC)
        started = time.monotonic()
        self.runs[name] += 1
        self.last_run[name] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = schedule_payload(spec, now)
        try:
            if spec.function:
                result = self.invoke(spec.function, payload)
            else:
                assert spec.queue is not None
                self.send(spec.queue.url, payload if isinstance(payload, str) else json.dumps(payload))
                result = None
        except Exception as exc:
            log.error("schedule %s failed:\n%s", name, traceback.format_exc())
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return RunResult(False, None, error, int((time.monotonic() - started) * 1000))
        return RunResult(True, result, None, int((time.monotonic() - started) * 1000))

    def tick(self) -> float:
        """Run every schedule that is due; return seconds until the next one is."""
        now = self.clock()
        for name, due in sorted(self.next_due.items(), key=lambda kv: kv[1]):
            if due <= now:
                interval = self.intervals[name]
                assert interval is not None
                while due <= now:
                    due += interval
                self.next_due[name] = due
                log.info("schedule %s is due (%s)", name, self.specs[name].expression)
                self.run(name)
        if not self.next_due:
            return 3600.0
        return max(0.0, min(self.next_due.values()) - self.clock())

    def start(self) -> None:
        if not self.automatic or not self.next_due:
            return
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.tick()
            self._stop.wait(min(wait, 60.0))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
