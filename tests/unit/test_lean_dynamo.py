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
