"""Shared fixtures: one embedded AWS and one Stripe emulator per test session (per xdist worker).

Everything the template declares (tables, queues, keys) is provisioned from ``template.yaml`` by the same code the
local stack uses, and every function's environment variables are resolved and exported, so handlers invoked
in-process see exactly what they would see deployed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from devstack.stack import Stack
from stripe_emulator.server import StripeEmulator
from tests.support import aws

# Property tests are bounded by their example counts, never by the clock: on a shared 2-core machine a per-example
# deadline fails a correct test. Seeded runs come from each test's own settings (derandomize where it matters).
settings.register_profile("bounded", deadline=None)
settings.load_profile("bounded")


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[StripeEmulator]:
    emulator = StripeEmulator(port=0, webhook_retry_base=0.05)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def provisioned(stripe_emulator: StripeEmulator) -> Iterator[tuple[str, Stack]]:
    with aws.moto_server() as endpoint:
        stack = aws.provision_template(endpoint, {"StripeApiBase": stripe_emulator.url})
        yield endpoint, stack


@pytest.fixture(scope="session")
def aws_endpoint(provisioned: tuple[str, Stack]) -> str:
    return provisioned[0]


@pytest.fixture(scope="session")
def aws_stack(provisioned: tuple[str, Stack]) -> Stack:
    """The provisioned template: physical table names, queues (URL, ARN, DLQ) and keys."""
    return provisioned[1]


@pytest.fixture
def tenant(aws_endpoint: str) -> tuple[str, str]:
    """A fresh tenant and environment for each test: tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    return (f"tenant_{suffix}", f"env_{suffix}")


@pytest.fixture
def other_tenant(aws_endpoint: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return (f"tenant_{suffix}", f"env_{suffix}")
