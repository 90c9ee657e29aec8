"""A minimal DynamoDB ``GetItem`` client for the authorizer: SigV4 over ``http.client``.

The authorizer runs before every uncached request, so its cold start is on the critical path of a client's
first call. botocore alone costs ~250 ms to import and build a client; this module needs only the standard
library. It signs with AWS Signature Version 4 exactly as botocore does (a unit test compares the two byte for
byte), uses the Lambda's credentials from the environment, keeps one connection per thread alive across warm
invocations (Lambda runs one invocation at a time; the local stack runs many in threads, and an HTTP connection
carries one request at a time), and retries throttling and 5xx twice with backoff.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from billing.errors import ServiceUnavailable, TooManyRequests
from billing.settings import aws_credentials, get_settings
from billing.store.attrs import deserialize_value, serialize_value

_TARGET_PREFIX = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_THROTTLES = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded")


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sign(
    *,
    credentials: Credentials,
    region: str,
    host: str,
    target: str,
    body: bytes,
    now: datetime,
) -> dict[str, str]:
    """Headers of a SigV4-signed DynamoDB JSON request (``POST /``)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    headers = {
        "content-type": _CONTENT_TYPE,
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/dynamodb/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(("AWS4" + credentials.secret_key).encode("utf-8"), day)
    for part in (region, "dynamodb", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


# Tries in all, the socket timeout of each (connect, then each read) and the base of the waits between tries: one
# call's worst case (``worst_case_seconds``) fits the authorizer's timeout (tests/template checks it).
ATTEMPTS = 2
TIMEOUT_S = 1.5
_WAIT_S = 0.05


def worst_case_seconds() -> float:
    return ATTEMPTS * 2 * TIMEOUT_S + sum(_WAIT_S * float(2**attempt) for attempt in range(1, ATTEMPTS))


class LeanDynamo:
    def __init__(
        self,
        region: str,
        credentials: Credentials,
        endpoint_url: str | None = None,
        timeout: float | None = None,
    ) -> None:
        url = urlsplit(endpoint_url or f"https://dynamodb.{region}.amazonaws.com")
        self.region = region
        self.credentials = credentials
        self.https = url.scheme == "https"
        self.host = url.netloc
        self.timeout = TIMEOUT_S if timeout is None else timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        last_error: Exception | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(_WAIT_S * (2**attempt))
            headers = sign(
                credentials=self.credentials,
                region=self.region,
                host=self.host,
                target=_TARGET_PREFIX + operation,
                body=body,
                now=datetime.now(UTC),
            )
            try:
                conn = self._connection()
                conn.request("POST", "/", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                last_error = exc
                continue
            if resp.status == 200:
                result: dict[str, Any] = json.loads(data)
                return result
            error_type = ""
            with contextlib.suppress(ValueError):
                error_type = str(json.loads(data).get("__type", ""))
            if resp.status >= 500 or error_type.endswith(_THROTTLES):
                last_error = RuntimeError(f"DynamoDB {operation} answered {resp.status} {error_type}")
                continue
            raise RuntimeError(f"DynamoDB {operation} failed: {resp.status} {data[:200]!r}")
        if isinstance(last_error, RuntimeError) and "Exception" in str(last_error):
            raise TooManyRequests("storage is busy; retry shortly", {"retry_after": 1})
        raise ServiceUnavailable("storage is unavailable; retry shortly", {"retry_after": 1})

    def get_item(self, table: str, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        out = self._call(
            "GetItem",
            {
                "TableName": table,
                "Key": {"PK": serialize_value(pk), "SK": serialize_value(sk)},
                "ConsistentRead": consistent,
            },
        )
        item = out.get("Item")
        return {k: deserialize_value(v) for k, v in item.items()} if item else None


class LeanTable:
    """The read side of ``billing.store.dynamo.Table`` that the authorizer needs."""

    def __init__(self, client: LeanDynamo, name: str) -> None:
        self.client = client
        self.name = name

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        return self.client.get_item(self.name, pk, sk, consistent=consistent)


@lru_cache(maxsize=1)
def entities_reader() -> LeanTable:
    settings = get_settings()
    access_key, secret_key, token = aws_credentials()
    client = LeanDynamo(settings.region, Credentials(access_key, secret_key, token), settings.aws_endpoint_url)
    return LeanTable(client, settings.entities_table)
