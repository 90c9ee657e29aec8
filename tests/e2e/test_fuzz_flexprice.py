"""Property-based fuzzing of the local stack with Flexprice's spec (the distilled contract), not ours.

A Flexprice client builds its requests from Flexprice's spec, so requests generated from it (valid and invalid ones)
are what our API meets in the field. For every operation of the contract that we serve, bounded and seeded: no answer
is a 5xx, every error answer is our envelope (code, message, http_status_code, details) with a JSON content type,
and every success answer is JSON. Which requests we refuse on purpose is listed in
``tests/contract/test_openapi_vs_flexprice.py``; the field-by-field differences are checked there too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.e2e.conftest import ROOT, LocalStack

EXAMPLES_PER_OPERATION = 6
CONTRACT = ROOT / "tests" / "reference" / "flexprice" / "contract.json"
OURS = json.loads((ROOT / "docs" / "openapi.json").read_text())
ENVELOPE = {"code", "message", "http_status_code", "details"}


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


SERVED = {
    (method.upper(), _normalize(path[len("/api/v1") :]))
    for path, item in OURS["paths"].items()
    for method in item
    if method in ("get", "put", "post", "delete", "patch")
}
_CONTRACT = json.loads(CONTRACT.read_text())
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in _CONTRACT["paths"].items()
    for method in item
    if (method.upper(), _normalize(path)) in SERVED
)
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_path(CONTRACT, config=CONFIG).include(name=OPERATIONS)
FUZZED: set[str] = set()


def test_the_served_operations_of_flexprices_spec_are_fuzzed():
    assert len(OPERATIONS) >= 30 and "POST /events" in OPERATIONS and "PUT /invoices/{id}" not in OPERATIONS


def _fuzz_key(stack: LocalStack) -> str:
    out = subprocess.run(
        [
            *(sys.executable, "tools/apikeys.py", "--endpoint-url", stack.aws, "--table", "EntitiesTable"),
            *("create", "--tenant", f"Flexfuzz {uuid.uuid4().hex[:8]}", "--environment", "fuzz", "--json"),
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
def flex_session(stack: LocalStack) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["x-api-key"] = _fuzz_key(stack)
    statuses: Counter[int] = Counter()
    session.hooks["response"].append(lambda res, *args, **kwargs: statuses.update([res.status_code]))
    yield session
    print(f"\nFlexprice-spec fuzzing: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert FUZZED and sum(statuses.values()) >= len(FUZZED)
    assert not [status for status in statuses if status >= 500]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_flexprice_requests_never_get_a_5xx_and_errors_are_our_envelope(
    case: Any, stack: LocalStack, flex_session: requests.Session
) -> None:
    FUZZED.add(f"{case.method} {case.path}")
    key = str(flex_session.headers["x-api-key"])
    case.headers = {**(case.headers or {}), "x-api-key": key}  # the spec's security scheme would generate one
    response = case.call(base_url=f"{stack.api}/api/v1", session=flex_session, headers={"x-api-key": key}, timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
    content_type = (response.headers.get("content-type") or [""])[0]
    assert not response.content or content_type.startswith("application/json"), response.headers
    if response.status_code >= 400:
        body = response.json()
        if set(body) == {"message"}:  # API Gateway's own answers (no route, no key, too large) carry only a message
            assert response.status_code in (401, 403, 404, 413), body
        else:
            assert set(body) == ENVELOPE and body["http_status_code"] == response.status_code, body
