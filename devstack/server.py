"""Loopback HTTP servers: ``ThreadingHTTPServer`` with a listen backlog for bursts of clients, TCP_NODELAY on every
accepted socket, a read timeout, and a 400 answer (then a closed connection) for malformed HTTP framing.
"""

from __future__ import annotations

import logging
import re
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

# Pending connections the kernel holds while every handler thread is busy (socketserver's default is 5, so a burst of
# parallel clients saw resets), and seconds a connection may stay silent mid-request or idle between requests.
LISTEN_BACKLOG = 512
READ_TIMEOUT_S = 60.0
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class BadFraming(ValueError):
    """The request's body framing cannot be read unambiguously (RFC 9112 section 6.3): answered 400."""


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
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, port: int, dispatch: Dispatch, name: str, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.dispatch = dispatch
        self.name = name
        self.read_timeout = read_timeout
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

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # the socket's timeout for every read (StreamRequestHandler)
        super().setup()

    def _exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise BadFraming("the body ended before its declared length")
        return data

    def _read_chunked(self) -> bytes | None:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise BadFraming("malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailer fields, then the empty line
                    line = self.rfile.readline(8192)
                    if line in (b"\r\n", b"\n"):
                        return b"".join(chunks)
                    if not line.endswith(b"\n"):
                        raise BadFraming("the chunked body ended without its last line")
            total += size
            if total > API_GATEWAY_MAX_BODY:
                return None
            chunks.append(self._exactly(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadFraming("a chunk is not followed by CRLF")

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` if it is over API Gateway's limit. Raises ``BadFraming``."""
        if self.headers.defects:  # e.g. a header line without a colon: where the headers end is unclear
            raise BadFraming(f"malformed header section: {self.headers.defects[0]!r}")
        encodings = [e.strip().lower() for e in ",".join(self.headers.get_all("Transfer-Encoding") or []).split(",")]
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if encodings != [""]:
            if lengths:
                raise BadFraming("both Transfer-Encoding and Content-Length")
            if encodings != ["chunked"]:
                raise BadFraming(f"unsupported Transfer-Encoding {','.join(encodings)!r}")
            return self._read_chunked()
        if len(lengths) > 1 or not all(_DIGITS.fullmatch(v) for v in lengths):
            raise BadFraming("invalid Content-Length")
        length = int(lengths.pop()) if lengths else 0
        if length > API_GATEWAY_MAX_BODY:
            return None
        return self._exactly(length) if length else b""

    def _serve(self) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        function = None
        try:
            body = self._read_body()
        except BadFraming as exc:
            log.info("%s: bad request framing: %s", self.server.name, exc)
            self.close_connection = True  # what follows on this connection cannot be delimited
            self._reply(gateway_message(400, "Bad Request"), started, parts, function)
            return
        except TimeoutError:
            self.close_connection = True
            self._reply(gateway_message(408, "Request Timeout"), started, parts, function)
            return
        if body is None:
            self.close_connection = True  # the rest of the oversized body is not read
            reply = gateway_message(413, "Request Entity Too Large")
        else:
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                value = value.strip(" \t")  # optional whitespace around a field value is not part of it (RFC 9110)
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
        self._reply(reply, started, parts, function)

    def _reply(self, reply: Reply, started: float, parts: Any, function: str | None) -> None:
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the HTTP parser finds (bad request line, header syntax, oversized headers): a JSON answer."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unreadable request line leaves HTTP/0.9, which has no status line
        _, headers, data = gateway_message(code, message or self.responses.get(code, ("Error",))[0])
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.name, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        # No access line from the base class: ``_serve`` logs one with the function and the duration.
        self.send_response_only(code, message)
        self.send_header("Server", "devstack")
        self.send_header("Date", self.date_time_string())
