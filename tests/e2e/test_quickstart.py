"""The README's quickstart, run as written against a fresh local stack, so that it cannot rot.

Each ```bash block of the README's "Quickstart" section is run in order in one bash (variables carry over, as in the
reader's terminal), with only the ports changed to the test stack's. The ```json block that follows each one is what
the README says it answers, line by line: the same JSON keys and values, except that ids, Stripe's random ids,
timestamps and the last four characters of a secret hint may differ (the README says so).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, LocalStack, _start

README_KEY = "bk_local_dev_key_0123456789"
END = "@@quickstart-block-end@@"
_VARIABLE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)|(?<=_)(?P<id>[A-Za-z0-9]{10,})|…(?P<hint>[A-Za-z0-9]{4})"
)


def quickstart(readme: str) -> list[tuple[str, str]]:
    """(commands, expected answer) of every block of the README's quickstart section, in order."""
    _head, found, rest = readme.partition("\n## Quickstart")
    assert found, "the README has a Quickstart section"
    section = rest.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```\n```json\n(.*?)```", section, re.S)


def pattern(expected: str) -> re.Pattern[str]:
    """``expected`` as a regular expression in which ids, timestamps and secret hints may vary."""
    out, pos = "", 0
    for match in _VARIABLE.finditer(expected):
        out += re.escape(expected[pos : match.start()])
        if match.group("time"):
            out += r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
        elif match.group("id"):
            out += r"[A-Za-z0-9]{10,}"
        else:
            out += "…[A-Za-z0-9]{4}"
        pos = match.end()
    return re.compile(out + re.escape(expected[pos:]))


def like(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), f"{where}: {actual!r} vs {expected!r}"
        for key, value in expected.items():
            like(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for n, (want, got) in enumerate(zip(expected, actual, strict=True)):
            like(want, got, f"{where}[{n}]")
    elif isinstance(expected, str):
        assert isinstance(actual, str) and pattern(expected).fullmatch(actual), f"{where}: {actual!r} vs {expected!r}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} vs {expected!r}"


def compare(expected_text: str, actual_text: str, block: int) -> None:
    expected_lines = expected_text.strip().splitlines()
    actual_lines = actual_text.strip().splitlines()
    assert len(actual_lines) == len(expected_lines), f"block {block} answered:\n{actual_text}"
    for n, (want, got) in enumerate(zip(expected_lines, actual_lines, strict=True)):
        try:
            expected = json.loads(want)
        except json.JSONDecodeError:
            assert pattern(want).fullmatch(got), f"block {block} line {n + 1}: {got!r} vs {want!r}"
            continue
        like(expected, json.loads(got), f"block {block} line {n + 1}")


def test_the_quickstart_has_the_seven_phases() -> None:
    blocks = quickstart((ROOT / "README.md").read_text())
    commands = "\n".join(c for c, _ in blocks)
    for step in (
        "/connections",
        "/features",
        "/plans",
        "/customers",
        "/integrations/mappings",
        "/setup/intent",
        "/subscriptions",
        "/events",
        "/events/bulk",
        "/schedules/InvoicingFindDueFunctionSchedule/run",
        "/invoices/$INVOICE",
    ):
        assert step in commands, step
    assert len(blocks) == 8


@pytest.fixture(scope="module")
def fresh_stack() -> Iterator[LocalStack]:
    """A stack of its own, with the README's dev key: the quickstart expects an empty development environment."""
    yield from _start([], {"BILLING_DEV_API_KEY": README_KEY, "LOCAL_PARAMETER_OVERRIDES": "LogLevel=INFO"})


def test_the_readme_quickstart_answers_what_it_shows(fresh_stack: LocalStack) -> None:
    for tool in ("bash", "curl", "jq", "date"):
        assert shutil.which(tool), f"the quickstart needs {tool}"
    blocks = quickstart((ROOT / "README.md").read_text())
    stack = fresh_stack
    script = ["set -euo pipefail"]
    for commands, _expected in blocks:
        script += [commands, f"echo {END}"]
    text = "\n".join(script)
    text = text.replace("http://127.0.0.1:3000", stack.api).replace(
        "http://127.0.0.1:12111", str(stack.info["stripe_url"])
    )
    with tempfile.TemporaryDirectory() as cwd:
        run = subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    outputs = run.stdout.split(END + "\n")
    assert run.returncode == 0 and len(outputs) == len(blocks) + 1, (run.stdout, run.stderr)
    for n, ((_commands, expected), actual) in enumerate(zip(blocks, outputs, strict=False), start=1):
        expected = expected.replace("http://127.0.0.1:12111", str(stack.info["stripe_url"]))
        compare(expected, actual, n)
