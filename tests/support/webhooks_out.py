"""Outbound webhooks in the integration tier: a receiver on loopback, and a pump that moves messages the way the
deployed event sources do (outbox stream → relay function; delivery queue → worker function, delays honoured)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.events import LambdaContext
from devstack.loader import load_handler
from devstack.streams import StreamReader
from devstack.template import functions, load
from tests.support import aws


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Records every POST; ``answer(path, n)`` is the status for the n-th request (0-based) to ``path`` carrying
    that ``webhook-id``."""

    answer: Callable[[str, int], int] = lambda path, n: 200
    requests: dict[str, list[Received]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner.lock:
                    seen = owner.requests.setdefault(self.path, [])
                    earlier = sum(1 for r in seen if r.headers.get("webhook-id") == headers.get("webhook-id"))
                    status = owner.answer(self.path, earlier)
                    seen.append(Received(headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def got(self, path: str) -> list[Received]:
        with self.lock:
            return list(self.requests.get(path, []))


class Pump:
    """Runs the relay on new outbox records and the worker on due delivery messages, as Lambda would."""

    def __init__(self, endpoint: str, stack: Any) -> None:
        template = load()
        fns = functions(template)
        self.relay = load_handler(fns["OutboxRelayFunction"].module_path)
        self.worker = load_handler(fns["WebhookDeliveryWorkerFunction"].module_path)
        self.sqs = aws.aws_client("sqs", endpoint)
        self.queue_url = stack.queues["WebhookDeliveryQueue"].url
        self.dlq_url = stack.queues["WebhookDeliveryDeadLetterQueue"].url
        self.reader = StreamReader(
            aws.aws_client("dynamodb", endpoint),
            aws.aws_client("dynamodbstreams", endpoint),
            stack.tables["OutboxTable"],
            "LATEST",
        )

    def relay_new(self) -> int:
        total = 0
        while True:
            records = [r for r in self.reader.read(100) if r["eventName"] == "INSERT"]
            if not records:
                return total
            self.relay({"Records": records}, LambdaContext("OutboxRelayFunction"))
            total += len(records)

    def work_once(self) -> int:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not got:
            return 0
        event = {
            "Records": [
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {}}
                for m in got
            ]
        }
        result = self.worker(event, LambdaContext("WebhookDeliveryWorkerFunction"))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in got:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(got)

    def run_until(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        """Pump until ``done()`` (delayed messages become visible on their own; the loop waits for them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.relay_new()
            worked = self.work_once()
            if done():
                return
            if not worked:
                time.sleep(0.2)
        raise AssertionError("the deliveries did not finish in time")

    def dead_letters(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]
