"""Every function runs its sample event from events/ (the same files `sam local invoke -e` takes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import template as tpl
from devstack.events import LambdaContext
from devstack.loader import load_handler

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = tpl.functions(tpl.load())
SAMPLES = sorted(p for p in (ROOT / "events").rglob("*.json"))


def _function_for(path: Path) -> tpl.Function:
    folder = path.stem.split("__")[0]
    for fn in FUNCTIONS.values():
        if fn.code_uri.name == folder:
            return fn
    raise AssertionError(f"{path} names no function of the template")


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_event_runs(path: Path, aws_endpoint: str) -> None:
    fn = _function_for(path)
    event = json.loads(path.read_text())
    result = load_handler(fn.module_path, fn.attribute)(event, LambdaContext(fn.logical_id))
    if path.parent.name == "schedule":
        assert isinstance(result, dict), result
        return
    if "Records" in event:
        assert isinstance(result, dict) and "batchItemFailures" in result
        return
    if path.parent.name == "widget":  # a CloudWatch custom widget answers HTML
        assert isinstance(result, str) and result, result
        return
    if fn.logical_id == "AuthorizerFunction":
        assert result["isAuthorized"] is True
        assert result["context"] == {"auth_error": "the API key is not valid"}
        return
    assert result["statusCode"] < 500, result
    assert result["headers"]["Content-Type"] == "application/json"
    if result["body"]:
        body = json.loads(result["body"])
        if result["statusCode"] >= 400:
            assert {"code", "message", "http_status_code"} <= set(body)
