"""The edge to operators' webhook receivers: one POST to a URL the operator registered, never anywhere else.

An operator-supplied URL must not reach into the VPC or the instance metadata service. The host name is resolved
once, every address is checked (``domain.webhooks_out.address_allowed``), and the connection is made to the checked
address itself (the Host header and TLS server name stay the URL's host), so a second resolution that answers
differently (DNS rebinding) is never used. Redirects are not followed. The local stack allows loopback.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from billing.domain.webhooks_out import address_allowed
from billing.settings import get_settings

MAX_RESPONSE_BYTES = 4096


class TargetRefused(Exception):
    """The URL may not be called (scheme, host or one of its addresses)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose form is not allowed (before it is stored; the addresses are checked again when called)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("the URL must start with https://")
    if parts.scheme == "http" and not allow_private:
        raise TargetRefused("the URL must use https")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("the URL must not carry credentials")


def _resolve(host: str, port: int, *, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the host {host} could not be resolved") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"the host {host} has no address")
    refused = [a for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if refused:
        raise TargetRefused(f"the host {host} resolves to an address that may not be called ({refused[0]})")
    return addresses[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, verifying the certificate for the URL's host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float | None = None) -> Answer:
    """POST ``body`` to ``url``; raises ``TargetRefused`` for a refused target and ``OSError`` for network failures."""
    settings = get_settings()
    allow_private = settings.webhook_allow_private_targets
    check_url(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = str(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port, allow_private=allow_private)
    limit = timeout if timeout is not None else settings.webhook_attempt_timeout
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = kind(host, address, port, limit)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={**headers, "user-agent": "billing-webhooks/1"})
        response = conn.getresponse()
        text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
        return Answer(response.status, text)
    except (http.client.HTTPException, ssl.SSLError) as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
