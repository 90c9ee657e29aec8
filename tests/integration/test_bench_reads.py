"""``make bench-reads`` at a tiny size: it loads, backfills with no difference left and prints a row per endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_reads_runs_at_a_tiny_size():
    env = {**os.environ, "BENCH_SIZES": "3,6", "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "reads.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| `")]
    assert any(r.startswith("| `GET /customers?limit=50` |") for r in rows)
    assert any(r.startswith("| `GET /dashboard/summary (30 whole days)` |") for r in rows)
    assert all(len(r.split(" | ")) == 3 for r in rows), rows  # the endpoint and one cell per size
    assert "size 6: loaded" in done.stdout and "finds no difference" in done.stdout
