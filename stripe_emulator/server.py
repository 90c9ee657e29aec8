"""The HTTP server: authentication, idempotency, injected faults, outages, routing, test helpers and hosted pages."""

from __future__ import annotations

import base64
import contextlib
import copy
import fnmatch
import json
import select
import socket
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stripe_emulator import pages
from stripe_emulator.errors import StripeError
from stripe_emulator.forms import FormError, decode
from stripe_emulator.resources import API_VERSION, Api
from stripe_emulator.store import Account, Clock, expand, new_id, strip_private
from stripe_emulator.webhooks import Scheduler, Webhooks

IDEMPOTENCY_TTL = 24 * 3600  # https://docs.stripe.com/api/idempotent_requests: keys may be pruned after 24 hours
KEY_STATES = ("active", "expired", "revoked")


@dataclass
class Settings:
    collection_delay: float = 0.0  # seconds between finalizing (auto_advance) and the automatic charge
    invoice_retry_interval: float = 3 * 86400.0  # seconds between automatic collection attempts
    invoice_max_attempts: int = 4
    dispute_delay: float = 0.0  # seconds (emulator clock) from a 0259 card's charge to its dispute, and to a decision
    refund_failure_delay: float = 1.0  # seconds (emulator clock) before a 5126 card's refund turns failed


@dataclass
class Fault:
    method: str
    path: str  # glob, e.g. /v1/invoices/*/finalize
    kind: str  # "500" | "429" | "timeout"
    count: int = 1
    delay: float = 30.0  # timeout: how long to hold the connection before closing it without an answer

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and self.method in (method, "*") and fnmatch.fnmatchcase(path, self.path)


OUTAGE_KINDS = ("503", "connection")


@dataclass
class Outage:
    """Stripe's API down: every ``/v1`` request is refused until the outage ends (helpers and pages stay up)."""

    kind: str  # "503": answered 503 api_error | "connection": the connection is closed without an answer
    started_at: float  # time.time()
    refused: int = 0
    ended_at: float | None = None

    def record(self) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else time.time()
        return {**asdict(self), "active": self.ended_at is None, "seconds": round(end - self.started_at, 3)}


class StripeEmulator:
    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        public_url: str | None = None,
        collection_delay: float = 0.0,
        invoice_retry_interval: float = 3 * 86400.0,
        invoice_max_attempts: int = 4,
        webhook_retry_base: float = 1.0,
        webhook_max_attempts: int = 6,
        webhook_timeout: float = 5.0,
        webhook_shuffle: bool = True,
        record_requests: bool = True,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self._public_url = public_url
        self.verbose = verbose
        self.lock = threading.RLock()
        self.clock = Clock()
        self.scheduler = Scheduler(self.clock)
        self.webhooks = Webhooks(self.clock, self.scheduler, self.lock)
        self.webhooks.config.retry_base = webhook_retry_base
        self.webhooks.config.max_attempts = webhook_max_attempts
        self.webhooks.config.timeout = webhook_timeout
        self.webhooks.config.shuffle = webhook_shuffle
        self.settings = Settings(collection_delay, invoice_retry_interval, invoice_max_attempts)
        self.accounts: dict[str, Account] = {}
        self.faults: list[Fault] = []
        self.outage: Outage | None = None
        self.key_states: dict[str, str] = {}  # API key -> "expired" | "revoked" (absent: active)
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self.api = Api(self)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        server = _Server((self.host, self.port), _Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        self.scheduler.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        self.scheduler.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> StripeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        return self._public_url or self.url

    # ------------------------------------------------------------------ test helpers (Python side)

    def reset(self) -> None:
        with self.lock:
            self.accounts.clear()
            self.faults.clear()
            self.outage = None
            self.key_states.clear()
            self.requests.clear()
            self.scheduler.clear()
            self.webhooks.reset()
            self.clock.offset = 0.0

    def inject_fault(self, method: str, path: str, kind: str, count: int = 1, delay: float = 30.0) -> None:
        if kind not in ("500", "429", "timeout"):
            raise ValueError(f"unknown fault kind {kind!r}: use 500, 429 or timeout")
        with self.lock:
            self.faults.append(Fault(method.upper(), path, kind, int(count), float(delay)))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def start_outage(self, kind: str = "503") -> dict[str, Any]:
        """From now on every API request fails: ``503`` (an ``api_error`` answer) or ``connection`` (closed unanswered).

        Nothing is executed or stored while the outage lasts. Starting an outage during one changes its kind.
        """
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"unknown outage kind {kind!r}: use 503 or connection")
        with self.lock:
            if self.outage is None or self.outage.ended_at is not None:
                self.outage = Outage(kind, time.time())
            else:
                self.outage.kind = kind
            return self.outage.record()

    def end_outage(self) -> dict[str, Any]:
        """The API answers again. Returns the outage's record (kind, seconds, requests refused); ``{}`` if none."""
        with self.lock:
            if self.outage is None:
                return {}
            if self.outage.ended_at is None:
                self.outage.ended_at = time.time()
            return self.outage.record()

    def outage_status(self) -> dict[str, Any]:
        """The current or last outage (``active``, ``kind``, ``refused``, ``seconds``); ``{}`` if there was none."""
        with self.lock:
            return self.outage.record() if self.outage is not None else {}

    def _refuse(self) -> str | None:
        """The outage kind when the API is down (counting the refused request), else None."""
        with self.lock:
            if self.outage is None or self.outage.ended_at is not None:
                return None
            self.outage.refused += 1
            return self.outage.kind

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change the timing settings (collection_delay, invoice_retry_interval, invoice_max_attempts,
        dispute_delay, refund_failure_delay)."""
        with self.lock:
            for key, value in values.items():
                if not hasattr(self.settings, key):
                    raise ValueError(f"unknown setting: {key}")
                setattr(self.settings, key, type(getattr(self.settings, key))(value))
            return asdict(self.settings)

    def set_key_state(self, api_key: str, key_state: str) -> dict[str, str]:
        """Expire or revoke a secret key (every call with it then answers 401), or make it active again."""
        if key_state not in KEY_STATES:
            raise ValueError(f"unknown key state {key_state!r}: use {', '.join(KEY_STATES)}")
        with self.lock:
            if key_state == "active":
                self.key_states.pop(api_key, None)
            else:
                self.key_states[api_key] = key_state
            return {"key": _masked(api_key), "state": key_state}

    def key_states_masked(self) -> list[dict[str, str]]:
        with self.lock:
            return [{"key": _masked(k), "state": v} for k, v in self.key_states.items()]

    def advance_clock(self, seconds: float) -> float:
        self.clock.advance(seconds)
        return self.clock.now()

    def configure_webhooks(self, **settings: Any) -> dict[str, Any]:
        with self.lock:
            self.webhooks.configure(settings)
            return asdict(self.webhooks.config)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d.record() for d in self.webhooks.deliveries]

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is due or in flight (retries scheduled later don't count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scheduler.idle():
                time.sleep(0.02)
                if self.scheduler.idle():
                    return True
            time.sleep(0.02)
        return False

    def account(self, api_key: str) -> Account:
        with self.lock:
            acct = self.accounts.get(api_key)
            if acct is None:
                acct = self.accounts[api_key] = Account(api_key)
            return acct

    def _owner(self, object_id: str) -> Account:
        for acct in self.accounts.values():
            if object_id in acct.objects:
                return acct
        raise StripeError(404, f"No such object: '{object_id}'", code="resource_missing", param="id")

    def complete_checkout_session(
        self, session_id: str, card: str = "4242424242424242", email: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            acct = self._owner(session_id)
            result: dict[str, Any] = strip_private(
                copy.deepcopy(self.api.complete_checkout(acct, session_id, card, email))
            )
            return result

    def pay_hosted_invoice(self, invoice_id: str, card: str = "4242424242424242") -> dict[str, Any]:
        with self.lock:
            acct = self._owner(invoice_id)
            result: dict[str, Any] = strip_private(copy.deepcopy(self.api.pay_hosted_invoice(acct, invoice_id, card)))
            return result

    def objects(self, api_key: str, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [strip_private(copy.deepcopy(o)) for o in self.account(api_key).all(kind)]

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.requests)

    # ------------------------------------------------------------------ the API

    def handle_api(self, method: str, path: str, query: str, body: bytes, headers: Any) -> _Response:
        request_id = "req_" + new_id("", 14)
        version = headers.get("Stripe-Version") or API_VERSION
        base_headers = {"Request-Id": request_id, "Stripe-Version": version}
        idem_key = headers.get("Idempotency-Key") if method == "POST" else None
        params: dict[str, Any] = {}
        replayed = False
        down = self._refuse()
        if down == "connection":
            return _Response(0, b"", "application/json", {}, hold=0.0)
        try:
            if down is not None:
                raise StripeError(
                    503,
                    "Stripe is temporarily unavailable. Please retry the request later.",
                    type="api_error",
                )
            api_key = _api_key(headers.get("Authorization"))
            self._check_key_state(api_key)
            raw = body.decode() if method == "POST" else query
            try:
                params = decode(raw)
            except (FormError, UnicodeDecodeError) as exc:
                raise StripeError(400, str(exc)) from None
            with self.lock:
                acct = self.account(api_key)
                fault = next((f for f in self.faults if f.matches(method, path)), None)
                if fault is not None:
                    fault.count -= 1
                    if fault.kind == "500":
                        raise StripeError(
                            500, "An unknown error occurred", type="api_error", headers={"Stripe-Should-Retry": "true"}
                        )
                    if fault.kind == "429":
                        raise StripeError(
                            429,
                            "Request rate limit exceeded. You can learn more about rate limits here "
                            "https://stripe.com/docs/rate-limits.",
                            code="rate_limit",
                        )
                timeout = fault.delay if fault is not None and fault.kind == "timeout" else None
                record = None
                if idem_key:
                    record = acct.idempotency.get(idem_key)
                    if record is not None and self.clock.now() - record["at"] > IDEMPOTENCY_TTL:
                        record = None
                    if record is not None:
                        if (record["method"], record["path"], record["params"]) != (method, path, params):
                            raise StripeError(
                                400,
                                "Keys for idempotent requests can only be used with the same parameters they "
                                "were first used with. Try using a key other than "
                                f"'{idem_key}' if you meant to execute a different request.",
                                type="idempotency_error",
                            )
                        replayed = True
                        status, payload = record["status"], record["body"]
                if not replayed:
                    status, payload = self._execute(acct, method, path, params, request_id, idem_key)
                    if idem_key and (status == 200 or status == 402):
                        acct.idempotency[idem_key] = {
                            "method": method,
                            "path": path,
                            "params": params,
                            "status": status,
                            "body": payload,
                            "at": self.clock.now(),
                            "request_id": request_id,
                        }
        except StripeError as exc:
            status, payload, timeout = exc.status, exc.body(), None
            base_headers.update(exc.headers)
        if idem_key:
            base_headers["Idempotency-Key"] = idem_key
        if replayed:
            base_headers["Idempotent-Replayed"] = "true"
            base_headers["Original-Request"] = record["request_id"] if record else ""
        self._log(method, path, params, status, payload, idem_key, replayed)
        return _Response(status, json.dumps(payload, indent=2).encode(), "application/json", base_headers, hold=timeout)

    def _check_key_state(self, api_key: str) -> None:
        with self.lock:
            key_state = self.key_states.get(api_key)
        if key_state == "expired":
            raise StripeError(401, f"Expired API Key provided: {_masked(api_key)}", code="api_key_expired")
        if key_state == "revoked":
            raise StripeError(401, f"Invalid API Key provided: {_masked(api_key)}")

    def _execute(
        self, acct: Account, method: str, path: str, params: dict[str, Any], request_id: str, idem_key: str | None
    ) -> tuple[int, dict[str, Any]]:
        found = self.api.match(method, path)
        if found is None:
            raise StripeError(
                404,
                f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help "
                "at https://support.stripe.com/.",
            )
        fn, groups = found
        expansions = params.pop("expand", None) or []
        if isinstance(expansions, str):
            expansions = [expansions]
        self.api.ctx.request_id, self.api.ctx.idempotency_key = request_id, idem_key
        try:
            result = fn(acct, params, *groups)
        except StripeError as exc:
            if exc.status == 402:
                return 402, exc.body()
            raise
        finally:
            self.api.ctx.request_id = self.api.ctx.idempotency_key = None
            if expansions:
                params["expand"] = expansions
        return 200, strip_private(expand(acct, result, expansions))

    def _log(
        self, method: str, path: str, params: Any, status: int, body: Any, idem_key: str | None, replayed: bool
    ) -> None:
        if not self.record_requests:
            return
        with self.lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "params": params,
                    "status": status,
                    "response": body,
                    "idempotency_key": idem_key,
                    "replayed": replayed,
                }
            )
            if len(self.requests) > 20000:
                del self.requests[:5000]

    # ------------------------------------------------------------------ helpers over HTTP

    def handle_helper(self, method: str, path: str, query: str, body: bytes, content_type: str) -> _Response:
        try:
            data: dict[str, Any] = {}
            if body:
                data = json.loads(body) if "json" in content_type else decode(body.decode())
            if query:
                data.update({k: v[-1] for k, v in parse_qs(query).items()})
            result = self._helper(method, path.removeprefix("/_emulator"), data)
            return _json(200, result)
        except StripeError as exc:
            return _json(exc.status, exc.body())
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})

    def _helper(self, method: str, path: str, data: dict[str, Any]) -> Any:
        parts = [p for p in path.split("/") if p]
        route = (method, *parts)
        if route == ("POST", "reset"):
            self.reset()
            return {"reset": True}
        if route == ("GET", "faults"):
            return [asdict(f) for f in self.faults if f.count > 0]
        if route == ("POST", "faults"):
            self.inject_fault(
                data["method"],
                data["path"],
                str(data["kind"]),
                int(data.get("count", 1)),
                float(data.get("delay", 30.0)),
            )
            return [asdict(f) for f in self.faults if f.count > 0]
        if route == ("DELETE", "faults"):
            self.clear_faults()
            return []
        if route == ("GET", "outage"):
            return self.outage_status()
        if route == ("POST", "outage"):
            return self.start_outage(str(data.get("kind", "503")))
        if route == ("DELETE", "outage"):
            return self.end_outage()
        if route == ("GET", "settings"):
            return self.configure()
        if route == ("POST", "settings"):
            return self.configure(**data)
        if route == ("GET", "keys"):
            return self.key_states_masked()
        if route == ("POST", "keys"):
            return self.set_key_state(str(data["key"]), str(data.get("state", "revoked")))
        if route == ("GET", "clock"):
            return {"now": self.clock.now(), "offset": self.clock.offset}
        if route == ("POST", "clock", "advance"):
            return {"now": self.advance_clock(float(data["seconds"])), "offset": self.clock.offset}
        if route == ("GET", "webhooks"):
            items = self.webhook_deliveries()
            for key in ("event_type", "event_id", "status", "endpoint_id"):
                if key in data:
                    items = [d for d in items if d[key] == data[key]]
            return items
        if route == ("POST", "webhooks", "config"):
            return self.configure_webhooks(**data)
        if route == ("POST", "webhooks", "wait"):
            return {"idle": self.wait_for_webhooks(float(data.get("timeout", 10)))}
        if route == ("GET", "requests"):
            return self.request_log()
        if route == ("DELETE", "requests"):
            with self.lock:
                self.requests.clear()
            return []
        if len(parts) == 4 and route[:3] == ("POST", "checkout", "sessions") and parts[3] == "complete":
            return self.complete_checkout_session(
                parts[2], str(data.get("card", "4242424242424242")), data.get("email")
            )
        if len(parts) == 3 and route[:2] == ("POST", "invoices") and parts[2] == "pay":
            return self.pay_hosted_invoice(parts[1], str(data.get("card", "4242424242424242")))
        raise StripeError(404, f"Unknown emulator helper: {method} /_emulator{path}")

    # ------------------------------------------------------------------ hosted pages

    def handle_page(self, method: str, path: str, body: bytes) -> _Response:
        parts = [p for p in path.split("/") if p]
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()} if body else {}
        with self.lock:
            try:
                acct = self._owner(parts[1]) if len(parts) >= 2 else None
            except StripeError:
                acct = None
            if acct is None:
                return _Response(404, b"Not found", "text/plain", {})
            if parts[0] == "checkout" and len(parts) == 2:
                session = acct.get(parts[1], "checkout.session")
                if session is None:
                    return _Response(404, b"Not found", "text/plain", {})
                if method == "POST":
                    try:
                        done = self.api.complete_checkout(acct, parts[1], form.get("card", ""))
                    except StripeError as exc:
                        return _Response(exc.status, pages.checkout(session, exc.message), "text/html", {})
                    target = done["success_url"].replace("{CHECKOUT_SESSION_ID}", done["id"])
                    return _Response(303, b"", "text/html", {"Location": target})
                return _Response(200, pages.checkout(session), "text/html", {})
            if parts[0] == "invoice":
                inv = acct.get(parts[1], "invoice")
                if inv is None or inv["status"] == "draft":
                    return _Response(404, b"Not found", "text/plain", {})
                if len(parts) == 3 and parts[2] == "pdf":
                    return _Response(200, pages.invoice_pdf(inv), "application/pdf", {})
                if method == "POST":
                    try:
                        self.api.pay_hosted_invoice(acct, parts[1], form.get("card", ""))
                    except StripeError as exc:
                        return _Response(exc.status, pages.invoice(inv, exc.message), "text/html", {})
                return _Response(200, pages.invoice(inv), "text/html", {})
        return _Response(404, b"Not found", "text/plain", {})


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    hold: float | None = None


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, indent=2).encode(), "application/json", {})


def _api_key(header: str | None) -> str:
    if not header:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using "
            "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
            "See https://stripe.com/docs/api#authentication "
            "for details, or we can help at https://support.stripe.com/.",
        )
    scheme, _, value = header.partition(" ")
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    prefixes = ("sk_test_", "rk_test_", "sk_live_", "rk_live_")
    if not (key.startswith(prefixes) and len(key) > len("sk_test_")):
        raise StripeError(401, f"Invalid API Key provided: {_masked(key)}")
    return key


def _masked(key: str) -> str:
    return key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # listen backlog: a burst of parallel clients waits instead of being reset
    emulator: StripeEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "stripe-emulator"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        parsed = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = parsed.path.rstrip("/") or "/"
        if path.startswith("/v1/"):
            response = emulator.handle_api(method, path, parsed.query, body, self.headers)
        elif path.startswith("/_emulator/"):
            response = emulator.handle_helper(method, path, parsed.query, body, self.headers.get("Content-Type", ""))
        elif path.startswith(("/checkout/", "/invoice/")):
            response = emulator.handle_page(method, path, body)
        else:
            response = _json(
                404,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"Unrecognized request URL ({method}: {path}).",
                    }
                },
            )
        if response.hold is not None:
            self._hold(response.hold)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _hold(self, seconds: float) -> None:
        """The timeout fault: the work is done, but the answer never comes; the connection is then dropped."""
        deadline = time.monotonic() + seconds
        stopping = self.server.emulator._stopping
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.1))
            if readable:  # the client gave up and closed the connection
                break
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
