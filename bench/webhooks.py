"""Stripe webhooks benchmark: the intake's latency in-process, and the processor's throughput on the local stack.

Intake: the template is provisioned on an embedded AWS on loopback (the integration tier's harness, with the Stripe
emulator behind ``StripeApiBase``), a tenant environment gets a Stripe connection with a known webhook secret, and
the intake function's real handler is invoked in-process with function URL events signed as Stripe signs them
(``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``). The first call (import + secret read) is timed on its own; after a
few warm-up calls, ``BENCH_INTAKE_CALLS`` calls are timed: median, p95 and p99 of verify-and-enqueue.

Processor: the local stack (``python -m devstack`` on free ports) runs the template's SQS poller for the webhook
queue. ``BENCH_WEBHOOKS`` signed events of a type the product does not act on (recorded as
``ignored_unknown_type``), plus ``BENCH_DUPLICATES`` re-deliveries of some of them, are POSTed to the intake's
function URL from ``BENCH_SENDERS`` threads; the clock runs from the first send until the stack reports its queues
drained. Prints webhooks applied per second, then checks through the processor's own record
(``billing.services.webhooks.find_record``) that every event was applied exactly once and every re-delivery was
counted as a duplicate.

Times are from this machine and the embedded AWS (slower than AWS).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]
os.chdir(ROOT)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

INTAKE_CALLS = int(os.environ.get("BENCH_INTAKE_CALLS", "1000"))
WARMUP = 20
WEBHOOKS = int(os.environ.get("BENCH_WEBHOOKS", "500"))
DUPLICATES = int(os.environ.get("BENCH_DUPLICATES", "50"))
SENDERS = int(os.environ.get("BENCH_SENDERS", "4"))
SECRET = "whsec_bench_" + uuid.uuid4().hex
EVENT_TYPE = "bench.noop"  # not a type the product acts on: recorded as ``ignored_unknown_type``


def say(text: str) -> None:
    print(text, flush=True)


def sign(body: bytes, secret: str = SECRET) -> str:
    t = int(time.time())
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_event(event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2020-08-27",
        "created": int(time.time()),
        "type": EVENT_TYPE,
        "livemode": False,
        "data": {"object": {"id": f"obj_{uuid.uuid4().hex[:14]}", "object": "bench"}},
    }
    return json.dumps(event).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def connection_body(secret_key: str) -> dict[str, Any]:
    return {
        "name": "Stripe",
        "provider_type": "stripe",
        "encrypted_secret_data": {"secret_key": secret_key, "webhook_secret": SECRET},
        "sync_config": {"customer": {"outbound": False, "inbound": False}, "invoice": {"outbound": False}},
    }


# ---------------------------------------------------------------------------------------------- intake


def intake() -> None:
    from devstack import template as tpl
    from devstack.events import LambdaContext, function_url_event
    from devstack.loader import load_handler
    from stripe_emulator.server import StripeEmulator
    from tests.support import aws
    from tests.support.api import call

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the embedded AWS's access log
    warnings.simplefilter("ignore")
    emulator = StripeEmulator(port=0)
    emulator.start()
    # What the handlers write (logs, the metrics flush) goes to a buffer, as it would go to CloudWatch.
    sink = io.StringIO()
    try:
        with aws.moto_server() as endpoint, contextlib.redirect_stdout(sink):
            aws.provision_template(endpoint, {"StripeApiBase": emulator.url}, function="WebhooksStripeIntakeFunction")
            os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
            from billing.settings import reset_settings

            reset_settings()

            suffix = uuid.uuid4().hex[:10]
            tenant = (f"tenant_{suffix}", f"env_{suffix}")
            res = call("POST", "/api/v1/connections", tenant=tenant, body=connection_body(f"sk_test_{suffix}"))
            if res.status != 201:
                raise SystemExit(f"connection not created: {res.status} {res.text}")

            fn = tpl.functions(tpl.load())["WebhooksStripeIntakeFunction"]
            path = f"/webhooks/stripe/{tenant[0]}/{tenant[1]}"

            def event() -> dict[str, Any]:
                body = stripe_event()
                headers = {"content-type": "application/json; charset=utf-8", "stripe-signature": sign(body)}
                out = function_url_event("POST", path, "", headers, None)
                out.update(body=body.decode(), isBase64Encoded=False)
                return out

            context = LambdaContext(fn.logical_id)
            first = event()
            started = time.perf_counter()
            handler = load_handler(fn.module_path, fn.attribute)
            loaded = time.perf_counter()
            reply = handler(first, context)
            done = time.perf_counter()
            if reply["statusCode"] != 200:
                raise SystemExit(f"intake refused a valid webhook: {reply}")
            cold = (
                f"Intake cold first call: {(done - started) * 1000:.1f} ms "
                f"(function module import {(loaded - started) * 1000:.1f} ms, shared package already loaded; "
                f"first call incl. the secret read "
                f"{(done - loaded) * 1000:.1f} ms)"
            )

            for _ in range(WARMUP):
                handler(event(), context)
            timings: list[float] = []
            for _ in range(INTAKE_CALLS):
                e = event()  # built (and signed) outside the timed region, as Stripe does it
                t0 = time.perf_counter()
                reply = handler(e, context)
                timings.append((time.perf_counter() - t0) * 1000)
                if reply["statusCode"] != 200:
                    raise SystemExit(f"intake refused a valid webhook: {reply}")
            warm = (
                f"Intake warm verify-and-enqueue, {INTAKE_CALLS} calls: median {statistics.median(timings):.2f} ms, "
                f"p95 {percentile(timings, 95):.2f} ms, p99 {percentile(timings, 99):.2f} ms, "
                f"max {max(timings):.2f} ms"
            )
    finally:
        emulator.stop()
    say(cold)
    say(warm)


# ---------------------------------------------------------------------------------------------- processor


def free_port() -> int:
    from tests.support.aws import free_port as _free_port

    return _free_port()


def start_stack() -> tuple[subprocess.Popen[bytes], dict[str, Any], Path]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    ready, log_path = workdir / "ready.json", workdir / "stack.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}{os.pathsep}{ROOT}",
        "LOCAL_API_PORT": str(free_port()),
        "LOCAL_FUNCTION_URL_PORT": str(free_port()),
        "LOCAL_AWS_PORT": str(free_port()),
        "LOCAL_STRIPE_PORT": str(free_port()),
        "LOCAL_ACCESS_LOG": "off",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--ready-file", str(ready)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the local stack did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return process, json.loads(ready.read_text()), log_path


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def processor() -> None:
    import requests

    process, info, log_path = start_stack()
    say(f"Local stack started (log: {log_path})")
    try:
        from billing import wiring
        from billing.scope import Scope
        from billing.services import apikeys, webhooks
        from billing.settings import reset_settings
        from billing.store.dynamo import Table
        from tests.support.aws import point_environment_at

        point_environment_at(info["aws_endpoint"], info["tables"])
        reset_settings()
        wiring.reset()
        table = Table(wiring.client("dynamodb"), info["tables"]["EntitiesTable"])
        tenant = apikeys.create_tenant(table, "Webhooks benchmark")
        environment = apikeys.create_environment(table, tenant["id"], "production")
        _record, key = apikeys.create_key(table, tenant["id"], environment["id"], "bench")
        api = requests.Session()
        api.headers.update({"x-api-key": key, "content-type": "application/json"})
        res = api.post(
            f"{info['api_url']}/api/v1/connections", json=connection_body(f"sk_test_{uuid.uuid4().hex}"), timeout=30
        )
        if res.status_code != 201:
            raise SystemExit(f"connection not created: {res.status_code} {res.text}")

        url = f"{info['function_url']}/webhooks/stripe/{tenant['id']}/{environment['id']}"
        originals = [stripe_event() for _ in range(WEBHOOKS)]
        deliveries = originals + originals[:DUPLICATES]  # Stripe re-delivers: same event, same id, new signature
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=SENDERS))

        def send(body: bytes) -> int:
            headers = {"content-type": "application/json; charset=utf-8", "stripe-signature": sign(body)}
            return session.post(url, data=body, headers=headers, timeout=30).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:
            statuses = list(pool.map(send, deliveries))
        sent = time.perf_counter()
        drained = requests.post(f"{info['api_url']}/_local/queues/drain?timeout=600", timeout=660)
        finished = time.perf_counter()
        refused = sum(1 for status in statuses if status != 200)
        if drained.status_code != 200 or refused:
            raise SystemExit(f"{refused} deliveries refused; drain answered {drained.status_code}: {drained.text}")
        elapsed = finished - started
        say(
            f"Processor: {WEBHOOKS} webhooks + {DUPLICATES} re-deliveries sent in {sent - started:.2f} s "
            f"({len(deliveries) / (sent - started):.0f} deliveries/s accepted by the intake over HTTP, "
            f"{SENDERS} senders); queue drained {elapsed:.2f} s after the first send"
        )
        say(
            f"Processor: {WEBHOOKS / elapsed:.1f} webhooks applied per second "
            f"({len(deliveries) / elapsed:.1f} deliveries/s incl. duplicates), send to drained"
        )

        scope = Scope(tenant["id"], environment["id"])
        records = [webhooks.find_record(scope, json.loads(body)["id"]) for body in originals]
        found = [r for r in records if r is not None]
        processed = [r for r in found if r.get("status") == "processed"]
        once = [r for r in processed if int(r.get("attempts", 0)) == 1]
        ignored = [r for r in processed if r.get("outcome") == "ignored_unknown_type"]
        duplicates = sum(int(r.get("duplicates", 0)) for r in found)
        duplicated_ids = {json.loads(body)["id"] for body in originals[:DUPLICATES]}
        dup_marked = sum(1 for r in found if r["SK"] in duplicated_ids and int(r.get("duplicates", 0)) == 1)
        say(
            f"Records: {len(found)}/{WEBHOOKS} present, {len(processed)} processed, {len(once)} applied exactly once "
            f"(attempts == 1), {len(ignored)} with outcome ignored_unknown_type; "
            f"{duplicates} duplicate deliveries counted (sent {DUPLICATES}), "
            f"{dup_marked}/{DUPLICATES} re-delivered events marked duplicates=1"
        )
        ok = len(found) == len(processed) == len(once) == WEBHOOKS and duplicates == DUPLICATES
        say("Exactly-once check: " + ("OK" if ok else "FAILED"))
        if not ok:
            raise SystemExit(1)
    finally:
        stop_stack(process)


def main() -> int:
    intake()
    processor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
