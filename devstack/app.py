"""``python -m devstack``: the template on 127.0.0.1, with an embedded AWS, and its control surface.

Environment (the control surface; tools and tests depend on it):

- ``BILLING_DEV_API_KEY``: the dev API key (otherwise a random one is printed);
- ``LOCAL_API_PORT`` (3000), ``LOCAL_FUNCTION_URL_PORT`` (3001), ``LOCAL_AWS_PORT`` (5000),
  ``LOCAL_STRIPE_PORT`` (12111, reserved for the Stripe emulator);
- ``LOCAL_PARAMETER_OVERRIDES``: template parameters, ``"AuthorizerCacheTtl=1 LogLevel=DEBUG"``;
- ``LOCAL_SQS_RETRY_DELAY``: seconds before a failed SQS message is visible again (2);
- ``LOCAL_SCHEDULES``: ``auto`` (rate schedules run on their own) or ``manual`` (only on demand);
- ``LOCAL_CONCURRENCY``: function invocations run at once (8); more wait for a slot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from devstack import template as tpl
from devstack.events import REGION
from devstack.gateway import ApiGateway, FunctionUrls, Reply, Request
from devstack.intrinsics import parameter_values, parse_overrides
from devstack.queues import Poller, queue_depth
from devstack.runtime import Runtime, reset_billing
from devstack.schedules import Scheduler
from devstack.server import HOST, LoopbackServer
from devstack.stack import (
    Queue,
    Stack,
    function_urls,
    http_routes,
    provision,
    resolve_environment,
    schedules,
    split_environments,
    sqs_sources,
)

log = logging.getLogger("devstack")


def _json(status: int, body: Any) -> Reply:
    return status, [("Content-Type", "application/json")], json.dumps(body, default=str).encode()


MIN_DEV_KEY_CHARS = 16  # as every API key (billing.services.apikeys)


@dataclass
class Config:
    template: Path = tpl.TEMPLATE
    api_port: int = 3000
    function_url_port: int = 3001
    aws_port: int = 5000
    stripe_port: int = 12111
    dev_api_key: str | None = None
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    retry_delay: int = 2
    automatic_schedules: bool = True
    ready_file: Path | None = None
    concurrency: int = 8

    @classmethod
    def from_environment(cls, env: dict[str, str], args: argparse.Namespace) -> Config:
        overrides = parse_overrides(env.get("LOCAL_PARAMETER_OVERRIDES", ""))
        overrides.update(parse_overrides(" ".join(args.parameter_overrides or [])))
        mode = env.get("LOCAL_SCHEDULES", "auto").lower()
        if mode not in ("auto", "manual"):
            raise SystemExit(f"LOCAL_SCHEDULES must be auto or manual, not {mode!r}")
        dev_key = env.get("BILLING_DEV_API_KEY") or None
        if dev_key is not None and len(dev_key.strip()) < MIN_DEV_KEY_CHARS:
            raise SystemExit(
                f"BILLING_DEV_API_KEY must be at least {MIN_DEV_KEY_CHARS} characters "
                f"(it has {len(dev_key.strip())}); unset it to get a random key"
            )
        return cls(
            template=Path(args.template).resolve() if args.template else tpl.TEMPLATE,
            api_port=int(env.get("LOCAL_API_PORT") or 3000),
            function_url_port=int(env.get("LOCAL_FUNCTION_URL_PORT") or 3001),
            aws_port=int(env.get("LOCAL_AWS_PORT") or 5000),
            stripe_port=int(env.get("LOCAL_STRIPE_PORT") or 12111),
            dev_api_key=dev_key,
            parameter_overrides=overrides,
            retry_delay=int(env.get("LOCAL_SQS_RETRY_DELAY") or 2),
            automatic_schedules=mode == "auto",
            ready_file=Path(args.ready_file) if args.ready_file else None,
            concurrency=int(env.get("LOCAL_CONCURRENCY") or 8),
        )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _moto_server(port: int) -> Any:
    """moto's ``ThreadedMotoServer`` on loopback, with TCP_NODELAY on its connections."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    from devstack import dynamo_txn

    # Concurrent requests: DynamoDB isolates item writes and transactions; moto alone does not (see dynamo_txn).
    dynamo_txn.install()

    class NoDelayHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    class Server(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=NoDelayHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return Server(ip_address=HOST, port=port, verbose=False)


class LocalStack:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.ready = False
        self.endpoint = f"http://{HOST}:{config.aws_port}"
        self.moto: Any = None
        self.stripe: Any = None
        self.api_server: LoopbackServer | None = None
        self.url_server: LoopbackServer | None = None
        self.gateway: ApiGateway | None = None
        self.runtime: Runtime | None = None
        self.scheduler: Scheduler | None = None
        self.pollers: list[Poller] = []
        self.consumed: list[Queue] = []
        self.stack: Stack | None = None
        self.dev: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._openapi_body: bytes | None = None

    # -- AWS clients of the stack itself -----------------------------------------------------------

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config as BotoConfig

            self._clients[service] = boto3.client(
                service,
                region_name=REGION,
                endpoint_url=self.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=BotoConfig(max_pool_connections=64, retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._clients[service]

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        cfg = self.config
        for port in (cfg.api_port, cfg.function_url_port, cfg.aws_port):
            if not _port_free(port):
                raise SystemExit(f"port {port} on {HOST} is in use (see LOCAL_*_PORT)")
        # Handlers never see real credentials and never reach real AWS.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint,
                "BILLING_AWS_ENDPOINT_URL": self.endpoint,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "billing-local",
            }
        )
        self.api_server = LoopbackServer(cfg.api_port, self.dispatch_api, "api")
        self.api_server.start()

        self.moto = _moto_server(cfg.aws_port)
        self.moto.start()

        template = tpl.load(cfg.template)
        overrides = dict(cfg.parameter_overrides)
        if "StripeApiBase" in (template.get("Parameters") or {}) and "StripeApiBase" not in overrides:
            if not _port_free(cfg.stripe_port):
                raise SystemExit(f"port {cfg.stripe_port} on {HOST} is in use (see LOCAL_STRIPE_PORT)")
            from stripe_emulator.server import StripeEmulator

            self.stripe = StripeEmulator(port=cfg.stripe_port, host=HOST)
            overrides["StripeApiBase"] = self.stripe.start()
        parameters = parameter_values(template, overrides)
        stack = self.stack = provision(template, cfg.template.parent, parameters, self.client)
        functions = tpl.functions(template, root=cfg.template.parent)
        environments = {name: resolve_environment(fn.environment, stack.resolver) for name, fn in functions.items()}
        base, overlays = split_environments(environments)
        os.environ.update(base)
        reset_billing()
        if overlays:
            log.info("functions run alone with their own environment: %s", ", ".join(sorted(overlays)))
        self.runtime = Runtime(functions, overlays, cfg.concurrency)
        self.runtime.load_all()

        self.gateway = ApiGateway(http_routes(stack, functions), self.runtime.invoke, cfg.api_port)
        urls = function_urls(functions)
        if urls:
            self.url_server = LoopbackServer(
                cfg.function_url_port, FunctionUrls(urls, self.runtime.invoke, cfg.function_url_port).handle, "url"
            )
            self.url_server.start()
        self._create_dev_key(stack)

        sqs = self.client("sqs")
        for source in sqs_sources(stack, functions):
            if not source.enabled:
                log.info("event source %s is disabled", source.name)
                continue
            poller = Poller(source, sqs, self.runtime.invoke, self.stop_event, cfg.retry_delay)
            self.pollers.append(poller)
            if source.queue not in self.consumed:
                self.consumed.append(source.queue)
        self.scheduler = Scheduler(
            schedules(stack, functions),
            self.runtime.invoke,
            lambda url, body: sqs.send_message(QueueUrl=url, MessageBody=body),
            automatic=cfg.automatic_schedules,
        )
        for poller in self.pollers:
            poller.start()
        self.scheduler.start()
        self.ready = True
        self._announce(time.monotonic() - started, len(self.gateway.routes), len(urls))

    def _create_dev_key(self, stack: Stack) -> None:
        if "EntitiesTable" not in stack.tables:
            log.info("the template has no EntitiesTable: no dev API key")
            return
        from billing.services import apikeys
        from billing.store.dynamo import Table

        table = Table(self.client("dynamodb"), stack.tables["EntitiesTable"])
        tenant = apikeys.create_tenant(table, "Local development")
        environment = apikeys.create_environment(table, tenant["id"], "development")
        record, key = apikeys.create_key(table, tenant["id"], environment["id"], "dev", self.config.dev_api_key)
        self.dev = {
            "api_key": key,
            "key_id": record["key_id"],
            "tenant_id": tenant["id"],
            "environment_id": environment["id"],
        }

    def _announce(self, seconds: float, routes: int, urls: int) -> None:
        cfg = self.config
        info = {
            "api_url": f"http://{HOST}:{cfg.api_port}",
            "function_url": f"http://{HOST}:{cfg.function_url_port}" if urls else None,
            "aws_endpoint": self.endpoint,
            "stripe_port": cfg.stripe_port,
            "stripe_url": self.stripe.url if self.stripe is not None else None,
            "tables": self.stack.tables if self.stack else {},
            "queues": {q.logical_id: q.url for q in (self.stack.queues.values() if self.stack else [])},
            "pid": os.getpid(),
            **self.dev,
        }
        lines = [
            f"Local stack ready in {seconds:.1f}s ({routes} routes, {urls} function URLs, "
            f"{len(self.pollers)} queue consumers, {len(self.scheduler.specs) if self.scheduler else 0} schedules)",
            f"  API          {info['api_url']}  (routes under /api/v1)",
        ]
        if urls:
            lines.append(f"  Function URL {info['function_url']}")
        lines.append(f"  AWS endpoint {self.endpoint}")
        if self.stripe is not None:
            lines.append(f"  Stripe       {self.stripe.url}  (emulator; connections' Stripe calls go here)")
        if self.dev:
            lines.append(f"  Tenant       {self.dev['tenant_id']} / {self.dev['environment_id']}")
            lines.append(f"  API key      {self.dev['api_key']}")
            lines.append(f"  Try: curl -H 'x-api-key: {self.dev['api_key']}' {info['api_url']}/api/v1/customers")
        print("\n".join(lines), flush=True)
        if cfg.ready_file:
            tmp = cfg.ready_file.with_suffix(cfg.ready_file.suffix + ".tmp")
            tmp.write_text(json.dumps(info, indent=2))
            tmp.replace(cfg.ready_file)

    def shutdown(self) -> None:
        self.ready = False
        self.stop_event.set()
        for server in (self.api_server, self.url_server):
            if server is not None:
                server.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for poller in self.pollers:
            poller.join(5)
        if self.stripe is not None:
            self.stripe.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.config.ready_file is not None:
            self.config.ready_file.unlink(missing_ok=True)

    # -- the API port: control surface first, then the HTTP API --------------------------------------

    def dispatch_api(self, request: Request) -> tuple[Reply, str | None]:
        path = request.path
        if path == "/health" and request.method in ("GET", "HEAD"):
            if self.ready:
                return _json(200, {"status": "ok"}), None
            return _json(503, {"status": "starting"}), None
        if not self.ready:
            return _json(503, {"message": "Service Unavailable"}), None
        if path.startswith("/_local/"):
            return self._control(request), None
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            return self._openapi(), None
        assert self.gateway is not None
        return self.gateway.handle(request)

    def _openapi(self) -> Reply:
        """The committed OpenAPI document beside the template (docs/openapi.json), read once.

        tools/openapi.py generates it from the template and the contract tier fails when it is stale, so the
        local stack serves the file rather than importing the generator (tools depend on devstack, not back).
        """
        if self._openapi_body is None:
            document = self.config.template.parent / "docs" / "openapi.json"
            if not document.is_file():
                return _json(404, {"message": f"{document} is missing: run python tools/openapi.py"})
            self._openapi_body = document.read_bytes()
        return 200, [("Content-Type", "application/json")], self._openapi_body

    def _control(self, request: Request) -> Reply:
        assert self.scheduler is not None
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts == ["_local", "schedules"]:
            return _json(200, {"schedules": self.scheduler.describe()})
        if request.method == "POST" and len(parts) == 4 and parts[:2] == ["_local", "schedules"] and parts[3] == "run":
            spec = self.scheduler.find(parts[2])
            if spec is None:
                return _json(404, {"message": f"no schedule named {parts[2]}"})
            run = self.scheduler.run(spec.name)
            body = {
                "name": spec.name,
                "function": spec.function,
                "queue": spec.queue.name if spec.queue else None,
                "duration_ms": run.duration_ms,
            }
            if run.ok:
                return _json(200, {**body, "result": run.result})
            return _json(500, {**body, "error": run.error})
        if request.method == "POST" and parts == ["_local", "queues", "drain"]:
            query = dict(parse_qsl(request.query))
            try:
                timeout = float(query.get("timeout", "30"))
            except ValueError:
                return _json(400, {"message": "timeout must be a number of seconds"})
            return self.drain(timeout)
        return _json(404, {"message": "Not Found"})

    def drain(self, timeout: float) -> Reply:
        """200 once every consumed queue is empty and no handler runs (twice in a row); 504 after ``timeout``."""
        assert self.runtime is not None
        sqs = self.client("sqs")
        started = time.monotonic()
        clean = 0
        while True:
            depths = {q.name: queue_depth(sqs, q) for q in self.consumed}
            running = self.runtime.running
            clean = clean + 1 if running == 0 and not any(depths.values()) else 0
            waited = round(time.monotonic() - started, 3)
            if clean >= 2:
                return _json(200, {"drained": True, "waited_seconds": waited})
            if waited >= timeout:
                return _json(504, {"drained": False, "waited_seconds": waited, "queues": depths, "running": running})
            time.sleep(0.1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="Run template.yaml on 127.0.0.1.")
    parser.add_argument("--template", help="template to run (default: the repository's template.yaml)")
    parser.add_argument("--ready-file", help="write the stack's URLs and dev key here (JSON) once it is ready")
    parser.add_argument("--parameter-overrides", nargs="*", metavar="NAME=VALUE", help="template parameter values")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="devstack: %(message)s", stream=sys.stderr)
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if os.environ.get("LOCAL_ACCESS_LOG", "on").lower() == "off":
        logging.getLogger("devstack.access").setLevel(logging.WARNING)
    config = Config.from_environment(dict(os.environ), args)
    local = LocalStack(config)

    def stop(signum: int, _frame: Any) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        local.stop_event.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        local.start()
    except BaseException as exc:
        if not isinstance(exc, SystemExit | KeyboardInterrupt):
            log.exception("the local stack failed to start")
        elif isinstance(exc, SystemExit) and exc.code not in (None, 0):
            log.error("%s", exc.code)
        local.shutdown()
        return 1
    while not local.stop_event.wait(0.5):
        pass
    local.shutdown()
    log.info("stopped")
    return 0
