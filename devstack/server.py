"""Loopback HTTP servers (``ThreadingHTTPServer``, TCP_NODELAY on every accepted socket)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.gateway import API_GATEWAY_MAX_BODY, Reply, Request, gateway_message

log = logging.getLogger("devstack")
access = logging.getLogger("devstack.access")

HOST = "127.0.0.1"
Dispatch = Callable[[Request], tuple[Reply, str | None]]


def loggable_target(path: str, query: str) -> str:
    """The request target as the access log prints it: the path and the query's parameter names, never their values
    (client data: ids, e-mails, whatever a client puts in a URL)."""
    if not query:
        return path or "/"
    names = [pair.split("=", 1)[0] for pair in query.split("&") if pair]
    return f"{path or '/'}?" + "&".join(f"{name}=*" for name in names)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, port: int, dispatch: Dispatch, name: str) -> None:
        self.dispatch = dispatch
        self.name = name
        super().__init__((HOST, port), _Handler)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackServer

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` if it is over API Gateway's limit (the connection is then closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > API_GATEWAY_MAX_BODY:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > API_GATEWAY_MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        body = self._read_body()
        function = None
        if body is None:
            reply = gateway_message(413, "Request Entity Too Large")
        else:
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                # Repeated headers are joined with commas, as API Gateway does.
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            request = Request(
                method=self.command,
                path=parts.path or "/",
                query=parts.query,
                headers=headers,
                body=body,
                source_ip=self.client_address[0],
            )
            try:
                reply, function = self.server.dispatch(request)
            except Exception:
                log.exception("request failed")
                reply = gateway_message(500, "Internal Server Error")
        status, headers_out, data = reply
        self.send_response(status)
        for name, value in headers_out:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        elapsed = (time.monotonic() - started) * 1000
        access.info(
            "%s %s %s -> %s %d %.0fms",
            self.server.name,
            self.command,
            loggable_target(parts.path, parts.query),
            function or "-",
            status,
            elapsed,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.name, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        # No access line from the base class: ``_serve`` logs one with the function and the duration.
        self.send_response_only(code, message)
        self.send_header("Server", "devstack")
        self.send_header("Date", self.date_time_string())
