"""The ledger audit: per invoice, our money against Stripe's (over- and under-collection, status mismatches).

Against the local stack (``make run``)::

    python tools/ledger.py audit --tenant <tenant_id> --environment <environment_id>

Against a deployed stack: ``--stack-name billing-dev`` (with the usual AWS credentials, ``--profile``). Prints one row
per finalized or voided invoice: our amount due and paid, what Stripe holds for it net of refunds and disputes, what
our payments say, and the findings; exits 1 when any invoice has one. The scheduled ``LedgerAuditFunction`` runs the
same audit over every Stripe-connected environment and publishes the count as ``LedgerMismatches``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "billing", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tools.webhooks import _point_billing_at, environment_command, stack_parser  # noqa: E402

COLUMNS = (
    ("invoice", "invoice_id"),
    ("status", "status"),
    ("stripe", "stripe_status"),
    ("due", "amount_due"),
    ("paid", "amount_paid"),
    ("at stripe", "stripe_net"),
    ("recorded stripe", "recorded_stripe_net"),
    ("recorded here", "recorded_here"),
)


def audit_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [title for title, _ in COLUMNS] + ["currency", "findings"]
    body = [
        [str(r.get(key) or "") for _, key in COLUMNS] + [str(r["currency"]).upper(), ",".join(r["problems"]) or "ok"]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body]
    lines.append(f"{sum(1 for r in rows if r['problems'])} of {len(rows)} invoices disagree with Stripe")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stack_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    environment_command(sub, "audit", "per invoice: our money vs Stripe's")
    args = parser.parse_args(argv)
    _point_billing_at(args)
    from billing.scope import Scope
    from billing.services import ledger_audit

    rows = [r.as_dict() for r in ledger_audit.audit_environment(Scope(args.tenant, args.environment))]
    print(audit_table(rows))
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
