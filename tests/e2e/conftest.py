"""The local stack (``python -m devstack``) as a subprocess on free ports, once per session (per worker)."""

from __future__ import annotations

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
        "LOCAL_ACCESS_LOG": "off",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
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
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the local stack did not stop on SIGTERM:\n{stack.log()}")
    assert code == 0, stack.log()
    assert "stopped" in stack.log()
    assert not ready.exists(), "the ready file is removed on a clean stop"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """template.yaml, with a one-second authorizer cache so revoked keys stop working quickly."""
    yield from _start([], {"LOCAL_PARAMETER_OVERRIDES": "AuthorizerCacheTtl=1", "BILLING_DEV_API_KEY": DEV_KEY})


@pytest.fixture(scope="session")
def fixture_stack() -> Iterator[LocalStack]:
    """The mechanisms template: function URLs, an authorizer of its own, a queue with a DLQ, schedules."""
    yield from _start(["--template", str(FIXTURE_TEMPLATE)], {"LOCAL_SQS_RETRY_DELAY": "1"})
