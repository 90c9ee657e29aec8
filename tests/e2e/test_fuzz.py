"""Property-based fuzzing of every endpoint of the local stack with its own OpenAPI document (schemathesis).

Valid and invalid requests are generated from docs/openapi.json (which ``GET /openapi.json`` serves); every answer
must be a non-5xx status the document lists for the operation, with a JSON content type and a body that matches
the documented schema. The fuzzing runs in a tenant of its own, so the other end-to-end tests never see its data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import ROOT, LocalStack

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

DOCUMENT = ROOT / "docs" / "openapi.json"
# The committed document (identical to the served one, see below), so every operation is a test of its own.
# The coverage phase is off: it sends every boundary of every schema (1000-event bulk bodies included), which is
# a load test of the embedded AWS rather than fuzzing; the generated phase keeps bodies small and is bounded here.
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)
# Operations fuzzed by this process (pytest-xdist may share them out between workers).
FUZZED: set[str] = set()


def _fuzz_key(stack: LocalStack) -> str:
    out = subprocess.run(
        [
            *(sys.executable, "tools/apikeys.py", "--endpoint-url", stack.aws, "--table", "EntitiesTable"),
            *("create", "--tenant", f"Fuzz {uuid.uuid4().hex[:8]}", "--environment", "fuzz", "--json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["api_key"])


@pytest.fixture(scope="module")
def fuzz_session(stack: LocalStack) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["x-api-key"] = _fuzz_key(stack)
    statuses: Counter[int] = Counter()
    session.hooks["response"].append(lambda res, *args, **kwargs: statuses.update([res.status_code]))
    started = time.monotonic()
    yield session
    total = sum(statuses.values())
    print(
        f"\nfuzzing: {total} requests in {time.monotonic() - started:.1f}s, statuses {dict(sorted(statuses.items()))}"
    )
    assert FUZZED, "operations were fuzzed"
    assert total >= len(FUZZED), "every operation fuzzed here was called"
    assert not [status for status in statuses if status >= 500]


def test_the_served_document_is_the_committed_one(stack: LocalStack) -> None:
    served = requests.get(f"{stack.api}/openapi.json", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    assert served.json() == json.loads(DOCUMENT.read_text())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_conform(case: Any, stack: LocalStack, fuzz_session: requests.Session) -> None:
    headers = {"x-api-key": fuzz_session.headers["x-api-key"]}
    FUZZED.add(f"{case.method} {case.path}")
    case.call_and_validate(base_url=stack.api, session=fuzz_session, headers=headers, checks=CHECKS, timeout=30)
