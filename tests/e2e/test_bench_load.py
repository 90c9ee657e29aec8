"""`make bench-load`, shortened: mixed traffic against a local stack it starts itself, then the exactly-once audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_benchmark_has_no_5xx_and_its_audit_passes(tmp_path: Path):
    report_file = tmp_path / "load.json"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}{os.pathsep}{ROOT}"}
    args = ["--seconds", "5", "--clients", "4", "--customers", "6", "--json", str(report_file)]
    done = subprocess.run(
        [sys.executable, "bench/load.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout[-6000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    assert "Result: PASS" in done.stdout, output

    report = json.loads(report_file.read_text())
    assert report["passed"] is True
    assert report["five_xx"] == 0 and report["transport_errors"] == 0 and report["unexpected_statuses"] == 0
    assert not any(status.startswith("5") for status in report["statuses"])
    assert report["requests"] == sum(row["count"] for row in report["routes"].values()) > 0
    assert report["routes"]["POST /events"]["count"] > 0

    audit = report["audit"]
    assert audit["passed"] is True and audit["failures"] == []
    distinct = report["distinct_events_accepted"]
    assert distinct > 0 and audit["lookups_ok"] == distinct
    assert audit["customers_exact"] == 6
    assert audit["dead_letters"] == 0
    assert audit["webhooks_applied_once"] == audit["webhooks_duplicates_ok"]
    # re-sends were part of the traffic, and still every distinct event was counted once
    assert report["events_accepted"] >= distinct
