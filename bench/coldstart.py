"""Cold-start benchmark: import + init time of every function in a fresh interpreter (median of 5).

Prints, per function: the module import (what Lambda's INIT phase runs) and the first-use setup of the AWS
clients the function builds lazily (paid by its first invocation). Interpreter start-up itself is excluded, as
the Lambda runtime starts before INIT. Figures are from this machine; they are not a pass/fail gate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]

from devstack import template as tpl  # noqa: E402

RUNS = int(os.environ.get("COLDSTART_RUNS", "5"))
TARGET_API_MS = 350
TARGET_AUTHORIZER_MS = 150

PROBE = r"""
import sys, time, json
t0 = time.perf_counter()
from devstack.loader import load_handler
t1 = time.perf_counter()
load_handler(__import__("pathlib").Path(sys.argv[1]), sys.argv[2])
t2 = time.perf_counter()
if sys.argv[3] == "lean":
    from billing.store.lean import entities_reader
    entities_reader()
else:
    from billing import wiring
    wiring.entities()
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t2 - t1) * 1000, "clients_ms": (t3 - t2) * 1000}))
"""


def _client_kind(fn: tpl.Function) -> str:
    """The authorizer reads keys through the lean SigV4 client; every other function through botocore."""
    return "lean" if "billing.store.lean" in fn.module_path.read_text() else "botocore"


def measure(fn: tpl.Function) -> tuple[float, float]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'billing'}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": fn.logical_id,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    env.pop("PYTHONDONTWRITEBYTECODE")
    imports, clients = [], []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(fn.module_path), fn.attribute, _client_kind(fn)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(figures["import_ms"])
        clients.append(figures["clients_ms"])
    return statistics.median(imports), statistics.median(clients)


def main() -> int:
    functions = tpl.functions(tpl.load())
    rows = []
    print(f"cold start, median of {RUNS} fresh interpreters (ms) on {os.cpu_count()} cores")
    print(f"{'function':42} {'import':>8} {'clients':>8} {'total':>8}  target")
    for name in sorted(functions):
        imp, cli = measure(functions[name])
        target = TARGET_AUTHORIZER_MS if name == "AuthorizerFunction" else TARGET_API_MS
        rows.append((name, imp, cli))
        flag = "ok" if imp + cli <= target else "over"
        print(f"{name:42} {imp:8.1f} {cli:8.1f} {imp + cli:8.1f}  {target} {flag}")
    totals = [imp + cli for _, imp, cli in rows]
    print(f"{'median over functions':42} {'':8} {'':8} {statistics.median(totals):8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
