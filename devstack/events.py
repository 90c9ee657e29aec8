"""Faithful Lambda events and contexts: HTTP API payload 2.0, function URL, SQS, scheduler."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    timeout_ms: int = 10_000
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _now_fields() -> tuple[str, int]:
    now = datetime.now(UTC)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


def _is_text(content_type: str) -> bool:
    ct = content_type.lower()
    return ct.startswith("text/") or "json" in ct or "xml" in ct or "x-www-form-urlencoded" in ct or not ct


def http_api_event(
    method: str,
    raw_path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    raw_query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    authorizer_context: dict[str, Any] | None = None,
    api_id: str = "local",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as API Gateway builds it."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        # Repeated parameters are joined with commas, as HTTP APIs do.
        query[key] = f"{query[key]},{value}" if key in query else value
    time_text, epoch = _now_fields()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {raw_path}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": route_key or f"{method} {raw_path}",
            "stage": "$default",
            "time": time_text,
            "timeEpoch": epoch,
        },
        "isBase64Encoded": False,
    }
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = {"lambda": authorizer_context}
    if body:
        if _is_text(headers.get("content-type", "")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def authorizer_event(route_key: str, raw_path: str, headers: dict[str, str], method: str) -> dict[str, Any]:
    """The REQUEST authorizer event (payload 2.0) for a route with ``$request.header.x-api-key``."""
    headers = {k.lower(): v for k, v in headers.items()}
    event = http_api_event(method, raw_path, route_key=route_key, headers=headers)
    event["type"] = "REQUEST"
    event["routeArn"] = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/$default/{method}{raw_path}"
    event["identitySource"] = [headers.get("x-api-key", "")]
    return event


def function_url_event(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes | None
) -> dict[str, Any]:
    """A Lambda function URL event (payload 2.0 shape, no authorizer, route ``$default``)."""
    event = http_api_event(method, raw_path, route_key="$default", raw_query=raw_query, headers=headers, body=body)
    event["requestContext"]["apiId"] = "local-url"
    event["requestContext"]["domainPrefix"] = "local-url"
    event["requestContext"]["authorizer"] = None
    event["requestContext"].pop("authorizer")
    return event


def sqs_event(queue_arn: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """An SQS event source mapping batch from ``ReceiveMessage`` results."""
    records = []
    for msg in messages:
        attrs = msg.get("Attributes", {})
        records.append(
            {
                "messageId": msg["MessageId"],
                "receiptHandle": msg["ReceiptHandle"],
                "body": msg["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attrs.get("SentTimestamp", str(int(time.time() * 1000))),
                    "SenderId": attrs.get("SenderId", ACCOUNT),
                    "ApproximateFirstReceiveTimestamp": attrs.get(
                        "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                    ),
                    **({"MessageGroupId": attrs["MessageGroupId"]} if "MessageGroupId" in attrs else {}),
                    **(
                        {"MessageDeduplicationId": attrs["MessageDeduplicationId"]}
                        if "MessageDeduplicationId" in attrs
                        else {}
                    ),
                },
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v.get("DataType", "String"),
                    }
                    for k, v in (msg.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": msg.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


_PARAM = re.compile(r"\{([^}/+]+)\+?\}")


def route_regex(path: str) -> re.Pattern[str]:
    """Compile an HTTP API route path (``/api/v1/features/{id}``, ``{proxy+}``) into a regex."""
    pattern = ""
    pos = 0
    for match in _PARAM.finditer(path):
        pattern += re.escape(path[pos : match.start()])
        greedy = match.group(0).endswith("+}")
        pattern += f"(?P<{match.group(1)}>.+)" if greedy else f"(?P<{match.group(1)}>[^/]+)"
        pos = match.end()
    pattern += re.escape(path[pos:])
    return re.compile(f"^{pattern}$")
