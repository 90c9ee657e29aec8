"""The authorizer's SigV4 signer produces exactly what botocore produces for the same request."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from billing.store.lean import Credentials, sign

NOW = datetime(2026, 11, 25, 12, 34, 56, tzinfo=UTC)
BODY = b'{"TableName":"billing-entities","Key":{"PK":{"S":"apikey#abc"},"SK":{"S":"apikey"}},"ConsistentRead":false}'


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEXAMPLETOKEN"])
@pytest.mark.parametrize("host", ["dynamodb.eu-west-1.amazonaws.com", "127.0.0.1:5000"])
def test_signature_matches_botocore(token, host):
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    ours = sign(
        credentials=creds,
        region="eu-west-1",
        host=host,
        target="DynamoDB_20120810.GetItem",
        body=BODY,
        now=NOW,
    )
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=BODY,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.GetItem",
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(
            BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
            "dynamodb",
            "eu-west-1",
        ).add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    if token:
        assert ours["x-amz-security-token"] == token


def test_concurrent_reads_from_threads_each_use_their_own_connection():
    """The local stack runs the authorizer in threads: one shared HTTP connection would mix their requests."""
    import json
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from billing.store.lean import LeanDynamo

    peers: set[tuple[str, int]] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            peers.add(self.client_address)
            time.sleep(0.01)  # overlap the threads' requests
            pk = body["Key"]["PK"]["S"]
            data = json.dumps({"Item": {"PK": {"S": pk}, "SK": {"S": "apikey"}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = LeanDynamo("us-east-1", Credentials("AKID", "secret"), f"http://127.0.0.1:{server.server_port}")

        def read(i: int) -> str:
            item = client.get_item("t", f"apikey#{i}", "apikey")
            assert item is not None
            return str(item["PK"])

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(read, range(400)))
        assert results == [f"apikey#{i}" for i in range(400)]  # every thread got its own answer
        assert 1 < len(peers) <= 16  # one kept-alive connection per thread, not one per request
    finally:
        server.shutdown()
        server.server_close()
