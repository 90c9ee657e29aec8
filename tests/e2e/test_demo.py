"""`make demo`: the seven phases of the Stripe workflow against a local stack it starts itself, on free ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import log_scan
from tests.support.aws import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_phase_and_exits_zero():
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}{os.pathsep}{ROOT}",
        "LOCAL_API_PORT": str(free_port()),
        "LOCAL_FUNCTION_URL_PORT": str(free_port()),
        "LOCAL_AWS_PORT": str(free_port()),
        "LOCAL_STRIPE_PORT": str(free_port()),
        "LOCAL_ACCESS_LOG": "on",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    done = subprocess.run(
        [sys.executable, "tools/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    for phase in ("1. Stripe connection", "2. Feature", "3. Customer", "4. Subscription", "5. Usage", "6. Scheduler"):
        assert phase in out
    assert "payment_status SUCCEEDED, amount_paid 42.50" in out
    assert "declining card:" in out and "payment_status FAILED" in out
    assert "hosted invoice http" in out
    assert out.rstrip().endswith("All phases passed.")
    # The whole run's stack log holds no secret, key or card data (the start-up banner's dev key excepted).
    log = Path(re.search(r"Starting the local stack \(log: (\S+)\)", out).group(1)).read_text(errors="replace")
    assert "devstack: api POST /api/v1/events -> " in log  # the access log was on and captured
    banner = {line for line in log.splitlines() if line.startswith(("  API key      ", "  Try: curl -H 'x-api-key: "))}
    assert len(banner) == 2
    findings = log_scan.scan(log, allow=banner)
    assert not findings, log_scan.report(findings)
