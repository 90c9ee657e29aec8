"""Shared fixtures: one embedded AWS per test session (per xdist worker), tables from template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import aws


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    with aws.moto_server() as endpoint:
        names = aws.build_from_template(endpoint)
        aws.point_environment_at(endpoint, names, aws.create_keys(endpoint))
        yield endpoint


@pytest.fixture
def tenant(aws_endpoint: str) -> tuple[str, str]:
    """A fresh tenant and environment for each test: tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    return (f"tenant_{suffix}", f"env_{suffix}")


@pytest.fixture
def other_tenant(aws_endpoint: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return (f"tenant_{suffix}", f"env_{suffix}")
