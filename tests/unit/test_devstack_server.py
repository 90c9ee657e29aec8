"""The local stack's HTTP servers under bursts and bad input: backlog, TCP_NODELAY, framing errors, read timeout."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from devstack.gateway import Request
from devstack.server import HOST, LISTEN_BACKLOG, LoopbackServer
from stripe_emulator.server import _Server as EmulatorServer

SEEN: list[Request] = []


def _echo(request: Request) -> tuple[tuple[int, list[tuple[str, str]], bytes], str | None]:
    SEEN.append(request)
    body = json.dumps({"headers": request.headers, "body": request.body.decode("latin-1")}).encode()
    return (200, [("Content-Type", "application/json")], body), "Echo"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer(0, _echo, "test", read_timeout=0.5)
    srv.start()
    SEEN.clear()
    yield srv
    srv.stop()


def _exchange(port: int, raw: bytes, wait: float = 3.0) -> bytes:
    """Send ``raw`` on a new connection; everything the server answers until it closes (or ``wait`` passes)."""
    with socket.create_connection((HOST, port), timeout=wait) as sock:
        sock.sendall(raw)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            out += data
        return out


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_burst_of_connections_waits_in_the_backlog() -> None:
    """While no connection is being accepted, at least 128 clients still complete their TCP handshake."""
    for srv in (LoopbackServer(0, _echo, "idle"), EmulatorServer((HOST, 0), object)):  # type: ignore[arg-type]
        assert srv.request_queue_size >= 128
        port = srv.server_address[1]
        clients = []
        try:
            for _ in range(140):
                sock = socket.socket()
                sock.settimeout(0.5)
                sock.connect((HOST, port))  # a full backlog drops the SYN: connect() would time out
                clients.append(sock)
        finally:
            for sock in clients:
                sock.close()
            srv.server_close()
        assert len(clients) == 140
    assert LISTEN_BACKLOG >= 128


def test_accepted_connections_have_tcp_nodelay() -> None:
    listener = LoopbackServer(0, _echo, "nodelay")
    try:
        with socket.create_connection((HOST, listener.port)):
            conn, _ = listener.get_request()  # what serve_forever calls for each connection
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.server_close()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",  # then the client stops sending
        b"NOT AN HTTP REQUEST\r\n\r\n",
        b"GET /x HTTP/1.1\r\nbad header line\r\n\r\n",
    ],
)
def test_malformed_framing_is_answered_400_and_the_connection_closed(server: LoopbackServer, raw: bytes) -> None:
    answer = _exchange(server.port, raw)
    assert answer, "no answer at all"
    status, body = _status_and_body(answer)
    assert status in (400, 408), answer[:200]
    assert "message" in body
    assert b"Connection: close" in answer
    assert not SEEN, "nothing reaches a function"


def test_a_body_that_stops_arriving_is_answered_408_after_the_read_timeout(server: LoopbackServer) -> None:
    started = time.monotonic()
    answer = _exchange(server.port, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", wait=5.0)
    waited = time.monotonic() - started
    assert _status_and_body(answer)[0] == 408
    assert b"Connection: close" in answer
    assert 0.3 < waited < 4.5  # the answer comes after the 0.5 s read timeout, and the server then closes


def test_a_silent_connection_is_closed_after_the_read_timeout(server: LoopbackServer) -> None:
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server, no answer owed
        assert time.monotonic() - started < 4


def test_a_well_framed_chunked_body_is_read(server: LoopbackServer) -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
    status, body = _status_and_body(_exchange(server.port, raw, wait=1.0))
    assert (status, body["body"]) == (200, "abcde")


def test_header_values_are_trimmed_on_both_sides(server: LoopbackServer) -> None:
    raw = b"GET /x HTTP/1.1\r\nHost: h\r\nx-api-key:   bk_abc \t \r\n\r\n"
    status, body = _status_and_body(_exchange(server.port, raw, wait=1.0))
    assert status == 200
    assert body["headers"]["x-api-key"] == "bk_abc"  # type: ignore[index]


def test_the_runtime_runs_at_most_its_concurrency_and_queues_the_rest(tmp_path) -> None:
    """Handlers share one interpreter with the embedded AWS: past a few at once they only slow each other down."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from devstack import template as tpl
    from devstack.runtime import Runtime

    code = tmp_path / "concurrency_probe"
    code.mkdir()
    (code / "app.py").write_text(
        "import threading, time\n"
        "lock = threading.Lock()\n"
        "state = {'now': 0, 'peak': 0}\n"
        "def lambda_handler(event, context):\n"
        "    with lock:\n"
        "        state['now'] += 1\n"
        "        state['peak'] = max(state['peak'], state['now'])\n"
        "    time.sleep(0.02)\n"
        "    with lock:\n"
        "        state['now'] -= 1\n"
        "    return state['peak']\n"
    )
    fn = tpl.Function("ProbeFunction", code, "app.lambda_handler", {}, {}, {"Timeout": 3})
    runtime = Runtime({"ProbeFunction": fn}, {}, concurrency=3)
    started = threading.Barrier(16)

    def call(_: int) -> int:
        started.wait()
        return int(runtime.invoke("ProbeFunction", {}))

    with ThreadPoolExecutor(max_workers=16) as pool:
        peaks = list(pool.map(call, range(16)))
    assert max(peaks) == 3  # three at once, and every call still served
    assert runtime.running == 0
