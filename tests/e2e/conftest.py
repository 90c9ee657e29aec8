"""The local stack (``python -m devstack``) as a subprocess on free ports, once per session (per worker).

Each stack logs at INFO with its access log on; when it stops, its whole log is scanned for secrets, keys and card
data (``tests/support/log_scan.py``), by pattern and for every exact secret the run gave it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.support import log_scan
from tests.support.aws import free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TEMPLATE = ROOT / "tests" / "fixtures" / "devstack" / "template.yaml"
STARTUP_TIMEOUT = 60
DEV_KEY = "bk_e2e_dev_key_0123456789abcdef"


@dataclass
class LocalStack:
    info: dict[str, Any]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api(self) -> str:
        return str(self.info["api_url"])

    @property
    def urls(self) -> str:
        return str(self.info["function_url"])

    @property
    def aws(self) -> str:
        return str(self.info["aws_endpoint"])

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.aws,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _start(args: list[str], extra_env: dict[str, str]) -> Iterator[LocalStack]:
    workdir = Path(tempfile.mkdtemp(prefix="devstack-"))
    ready = workdir / "ready.json"
    log_path = workdir / "stack.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}{os.pathsep}{ROOT}",
        "LOCAL_API_PORT": str(free_port()),
        "LOCAL_FUNCTION_URL_PORT": str(free_port()),
        "LOCAL_AWS_PORT": str(free_port()),
        "LOCAL_STRIPE_PORT": str(free_port()),
        "LOCAL_ACCESS_LOG": "on",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **extra_env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--ready-file", str(ready), *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the local stack did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    stack = LocalStack(json.loads(ready.read_text()), process, log_path)
    assert requests.get(f"{stack.api}/health", timeout=5).status_code == 200
    yield stack
    secrets = run_secrets(stack)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the local stack did not stop on SIGTERM:\n{stack.log()}")
    assert code == 0, stack.log()
    assert "stopped" in stack.log()
    assert not ready.exists(), "the ready file is removed on a clean stop"
    assert_no_secrets_logged(stack, secrets)


def run_secrets(stack: LocalStack) -> set[str]:
    """The exact secrets the run gave the stack: its dev API key and every connection's Stripe keys and webhook
    secret (decrypted from the stack's own tables with its KMS key, as the product does)."""
    found = {DEV_KEY, str(stack.info.get("api_key") or "")}
    table = (stack.info.get("tables") or {}).get("EntitiesTable")
    if not table:
        return found - {""}
    dynamodb, kms = stack.client("dynamodb"), stack.client("kms")
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, FilterExpression="attribute_exists(secret_ciphertext)"
    ):
        for item in page["Items"]:
            context = {
                name: item[field]["S"]
                for name, field in (
                    ("tenant_id", "tenant_id"),
                    ("environment_id", "environment_id"),
                    ("connection_id", "id"),
                )
            }
            plain = kms.decrypt(
                CiphertextBlob=base64.b64decode(item["secret_ciphertext"]["S"]), EncryptionContext=context
            )
            found.update(str(v) for v in json.loads(plain["Plaintext"]).values())
    return found - {""}


def assert_no_secrets_logged(stack: LocalStack, secrets: set[str]) -> None:
    """The stack's whole log holds no secret, key or card data; the banner printing the dev key is the one exception."""
    text = stack.log()
    assert " -> " in text and " GET /health -> - 200 " in text, (
        f"the access log is on and was captured:\n{text[-2000:]}"
    )
    banner: set[str] = set()
    if stack.info.get("api_key"):
        key = stack.info["api_key"]
        banner = {f"  API key      {key}", f"  Try: curl -H 'x-api-key: {key}' {stack.api}/api/v1/customers"}
        for line in banner:
            assert text.count(line) == 1, "the start-up banner prints the dev key once"
    findings = log_scan.scan(text, secrets=secrets, allow=banner)
    assert not findings, f"secrets in the local stack's log {stack.log_path}:\n{log_scan.report(findings)}"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """template.yaml, with a one-second authorizer cache so revoked keys stop working quickly."""
    yield from _start(
        [], {"LOCAL_PARAMETER_OVERRIDES": "AuthorizerCacheTtl=1 LogLevel=INFO", "BILLING_DEV_API_KEY": DEV_KEY}
    )


@pytest.fixture(scope="session")
def fixture_stack() -> Iterator[LocalStack]:
    """The mechanisms template: function URLs, an authorizer of its own, a queue with a DLQ, schedules."""
    yield from _start(["--template", str(FIXTURE_TEMPLATE)], {"LOCAL_SQS_RETRY_DELAY": "1"})
