"""Template tier: checkov's security scan of template.yaml finds nothing outside the written-down baseline.

The baseline is `.checkov.yaml` (checks skipped for every resource, each explained in docs/decisions.md D17) and
`Metadata: checkov: skip` on single resources (each with its comment). Any failed check fails this test, so a new
resource cannot regress quietly; a skip that no longer skips anything fails it too, so the baseline stays honest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from devstack import template as tpl

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
DECISIONS = ROOT / "docs" / "decisions.md"
SCAN_OPTIONS = ("--framework", "cloudformation", "--skip-download", "--output", "json")


@cache
def _scan() -> dict[str, Any]:
    """checkov's report on template.yaml with every check on: only the resources' own skips are applied."""
    if not CHECKOV.exists():
        raise AssertionError(f"{CHECKOV} is missing: run `make tools` (make test does it)")
    env = dict(os.environ)
    # offline: no policy metadata download, no update check (the scan needs neither)
    env.update({"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE", "LOG_LEVEL": "WARNING"})
    with tempfile.TemporaryDirectory() as cwd:  # away from .checkov.yaml, which checkov would read by itself
        result = subprocess.run(
            [str(CHECKOV), "-f", str(ROOT / "template.yaml"), *SCAN_OPTIONS],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.stdout.strip(), result.stderr[-4000:]
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["check_type"] == "cloudformation", report.get("check_type")
    return dict(report)


def _baseline() -> list[str]:
    return list(yaml.safe_load(CONFIG.read_text())["skip-check"])


def test_checkov_is_the_pinned_version() -> None:
    pinned = re.search(r"^CHECKOV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert pinned, "the Makefile pins checkov"
    assert _scan()["summary"]["checkov_version"] == pinned.group(1)


def test_the_scan_reads_every_resource_and_finds_nothing_outside_the_baseline() -> None:
    report = _scan()
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= len(tpl.load()["Resources"]), summary
    baseline = set(_baseline())
    failed = sorted(
        f"{r['check_id']} {r['resource']}: {r['check_name']}"
        for r in report["results"]["failed_checks"]
        if r["check_id"] not in baseline
    )
    assert not failed, "checkov failed checks (fix them, or skip with a reason):\n" + "\n".join(failed)


def test_the_three_named_findings_are_fixed_or_justified_on_their_resource() -> None:
    results = _scan()["results"]
    passed = {(r["check_id"], r["resource"]) for r in results["passed_checks"]}
    assert ("CKV_AWS_95", "AWS::Serverless::HttpApi.HttpApi") in passed, "API access logging"
    queues = tpl.resources(tpl.load(), "AWS::SQS::Queue")
    assert len(queues) >= 8
    for queue in queues:
        assert ("CKV_AWS_27", f"AWS::SQS::Queue.{queue}") in passed, f"{queue} is not KMS-encrypted"
    skipped = {r["resource"] for r in results["skipped_checks"] if r["check_id"] == "CKV_AWS_28"}
    assert skipped == {"AWS::DynamoDB::Table.RateLimitTable"}, "only the rate-limit table goes without PITR"


def test_every_skip_has_its_reason_and_still_skips_something() -> None:
    baseline = _baseline()
    assert len(baseline) == len(set(baseline))
    decisions = DECISIONS.read_text()
    d17 = decisions[decisions.index("## D17.") :]
    for check in baseline:
        assert re.search(rf"`{check}`[^\n]*\w", d17), f"{check} is skipped without a reason in docs/decisions.md D17"
    results = _scan()["results"]
    for skip in results["skipped_checks"]:
        reason = skip["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40, f"{skip['check_id']} on {skip['resource']} is skipped without a reason"
    covered = Counter(r["check_id"] for r in results["failed_checks"])
    stale = [check for check in baseline if not covered[check]]
    assert not stale, f"skips that no longer skip anything: {stale}"
