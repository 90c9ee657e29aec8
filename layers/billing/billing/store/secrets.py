"""Connection secrets, encrypted with the template's KMS key.

Ciphertext is bound to its tenant, environment and connection through the KMS encryption context, so a
ciphertext copied onto another connection or tenant does not decrypt. Clear secrets exist only in memory,
never in an item, a response or a log line.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from botocore.exceptions import ClientError

from billing import wiring
from billing.errors import ServiceUnavailable
from billing.scope import Scope
from billing.settings import get_settings


def _context(scope: Scope, connection_id: str) -> dict[str, str]:
    return {
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "connection_id": connection_id,
    }


def encrypt(scope: Scope, connection_id: str, secrets: dict[str, str]) -> str:
    key = get_settings().secrets_key_arn
    if not key:
        raise ServiceUnavailable("no encryption key is configured for connection secrets")
    try:
        out = wiring.client("kms").encrypt(
            KeyId=key,
            Plaintext=json.dumps(secrets, separators=(",", ":")).encode("utf-8"),
            EncryptionContext=_context(scope, connection_id),
        )
    except ClientError as err:
        raise ServiceUnavailable("the encryption service is unavailable; retry", {"retry_after": 1}) from err
    return base64.b64encode(out["CiphertextBlob"]).decode("ascii")


def decrypt(scope: Scope, connection_id: str, ciphertext: str) -> dict[str, Any]:
    try:
        out = wiring.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(ciphertext),
            EncryptionContext=_context(scope, connection_id),
        )
    except ClientError as err:
        raise ServiceUnavailable("the encryption service is unavailable; retry", {"retry_after": 1}) from err
    secrets: dict[str, Any] = json.loads(out["Plaintext"])
    return secrets
