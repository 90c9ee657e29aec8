"""Backfill and repair of the counts, state index keys and dashboard aggregates of one environment.

Against the local stack (``make run``)::

    python tools/read_models.py check  --tenant <tenant_id> --environment <environment_id>
    python tools/read_models.py repair --tenant <tenant_id> --environment <environment_id>

Against a deployed stack: ``--stack-name billing-dev`` (``--profile``). ``check`` recomputes the counts and the
per-day aggregates from the records and prints every difference (exit 1 when there is one); ``repair`` writes the
missing index keys and the differences (the backfill of data written before they existed), then checks again.
Run ``repair`` while the environment is quiet (docs/decisions.md, "Counts and per-day aggregates").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "billing", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tools.webhooks import _point_billing_at, environment_command, stack_parser  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = stack_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    environment_command(sub, "check", "recompute counts and aggregates from the records; print the differences")
    environment_command(sub, "repair", "write the missing index keys, counts and aggregates, then check again")
    args = parser.parse_args(argv)
    _point_billing_at(args)
    from billing.scope import Scope
    from billing.services import read_models

    scope = Scope(args.tenant, args.environment)
    report = read_models.run(scope, fix=args.command == "repair")
    print("\n".join(report.lines()))
    if args.command == "repair":
        report = read_models.run(scope)
        print("\n".join(report.lines()))
    return 1 if report.differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
