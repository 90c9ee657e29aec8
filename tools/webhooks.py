"""Stripe webhook operations: invoice drift against Stripe, and moving dead-lettered webhooks back to their queue.

Against the local stack (``make run``; embedded AWS on ``LOCAL_AWS_PORT``, default 5000; the Stripe emulator on
``LOCAL_STRIPE_PORT``, default 12111)::

    python tools/webhooks.py drift --tenant <tenant_id> --environment <environment_id>
    python tools/webhooks.py redrive --dry-run
    python tools/webhooks.py redrive --max 100

Against a deployed stack: ``--stack-name billing-dev`` (queue URLs and the table are read from the stack's resources;
Stripe is Stripe itself), with the usual AWS credentials (``--profile``).

``drift`` prints one row per invoice linked to a Stripe invoice: our status and total, Stripe's, and ``DRIFT`` where
they differ. ``redrive`` moves messages from ``WebhookDeadLetterQueue`` to ``WebhookQueue`` by receive, send and
delete (the embedded AWS has no ``StartMessageMoveTask``); ``--dry-run`` only counts them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "billing", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import boto3  # noqa: E402

BATCH = 10


def redrive(sqs: Any, dlq_url: str, queue_url: str, *, max_messages: int | None = None, dry_run: bool = False) -> int:
    """Move (or, dry, count) up to ``max_messages`` messages from ``dlq_url`` to ``queue_url``."""
    moved = 0
    held: list[str] = []
    try:
        while max_messages is None or moved < max_messages:
            want = BATCH if max_messages is None else min(BATCH, max_messages - moved)
            got = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=0,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for message in got:
                if dry_run:
                    held.append(message["ReceiptHandle"])
                else:
                    send: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
                    if message.get("MessageAttributes"):
                        send["MessageAttributes"] = message["MessageAttributes"]
                    sqs.send_message(**send)
                    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
    finally:
        for handle in held:  # a dry run leaves the dead letters where they were, visible again
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return moved


def drift_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = ["invoice", "number", "stripe invoice", "ours", "stripe", "our total", "stripe total", "currency", ""]
    body = [
        [
            str(r["invoice_id"]),
            str(r.get("invoice_number") or ""),
            str(r["stripe_invoice_id"]),
            str(r["ours_status"]),
            str(r["stripe_status"]),
            str(r["ours_total"]),
            str(r["stripe_total"]),
            str(r["currency"]).upper(),
            "DRIFT" if r["drift"] else "ok",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body]
    lines.append(f"{sum(1 for r in rows if r['drift'])} of {len(rows)} linked invoices differ from Stripe")
    return "\n".join(lines)


def _session(args: argparse.Namespace) -> Any:
    return boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()


def _client(service: str, args: argparse.Namespace) -> Any:
    if args.stack_name:
        return _session(args).client(service, region_name=args.region)
    return boto3.client(
        service,
        region_name=args.region,
        endpoint_url=args.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _stack_resources(args: argparse.Namespace) -> dict[str, str]:
    cfn = _client("cloudformation", args)
    out = cfn.describe_stack_resources(StackName=args.stack_name)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in out}


def _queue_urls(args: argparse.Namespace) -> tuple[str, str]:
    if args.dlq_url and args.queue_url:
        return args.dlq_url, args.queue_url
    if args.stack_name:
        resources = _stack_resources(args)
        return resources["WebhookDeadLetterQueue"], resources["WebhookQueue"]
    sqs = _client("sqs", args)
    return (
        sqs.get_queue_url(QueueName="WebhookDeadLetterQueue")["QueueUrl"],
        sqs.get_queue_url(QueueName="WebhookQueue")["QueueUrl"],
    )


def _point_billing_at(args: argparse.Namespace) -> None:
    """The product's settings come from the environment, as in a function: set it before the package reads it."""
    if args.stack_name:
        os.environ["ENTITIES_TABLE"] = _stack_resources(args)["EntitiesTable"]
        if args.profile:
            os.environ["AWS_PROFILE"] = args.profile
    else:
        os.environ.update(
            {
                "ENTITIES_TABLE": args.table or "EntitiesTable",
                "BILLING_AWS_ENDPOINT_URL": args.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "STRIPE_API_BASE": args.stripe_api_base
                or f"http://127.0.0.1:{os.environ.get('LOCAL_STRIPE_PORT', '12111')}",
            }
        )
    os.environ["AWS_REGION"] = args.region
    from billing import wiring
    from billing.settings import reset_settings

    reset_settings()
    wiring.reset()


def stack_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every operations tool takes to reach the local stack or a deployed one."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument(
        "--endpoint-url", default=f"http://127.0.0.1:{os.environ.get('LOCAL_AWS_PORT', '5000')}", help="local stack"
    )
    parser.add_argument("--stack-name", help="a deployed stack (reads its resources with CloudFormation)")
    parser.add_argument("--profile")
    return parser


def environment_command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand about one tenant environment, reading the product's table and Stripe."""
    command: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    command.add_argument("--tenant", required=True)
    command.add_argument("--environment", required=True)
    command.add_argument("--table", help="entities table name (local stack: EntitiesTable)")
    command.add_argument("--stripe-api-base", help="Stripe API base (local stack: the emulator)")
    return command


def main(argv: Sequence[str] | None = None) -> int:
    parser = stack_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    environment_command(sub, "drift", "our invoices vs Stripe: status and total per invoice")
    redo = sub.add_parser("redrive", help="move dead-lettered webhooks back to the webhook queue")
    redo.add_argument("--dlq-url")
    redo.add_argument("--queue-url")
    redo.add_argument("--max", type=int, default=None, help="move at most this many")
    redo.add_argument("--dry-run", action="store_true", help="only count the messages")
    args = parser.parse_args(argv)

    if args.command == "redrive":
        dlq_url, queue_url = _queue_urls(args)
        count = redrive(_client("sqs", args), dlq_url, queue_url, max_messages=args.max, dry_run=args.dry_run)
        print(f"{'would move' if args.dry_run else 'moved'} {count} message(s) from {dlq_url} to {queue_url}")
        return 0
    _point_billing_at(args)
    from billing.scope import Scope
    from billing.services import reconciliation

    rows = reconciliation.drift(Scope(args.tenant, args.environment))
    print(drift_table(rows))
    return 1 if any(r["drift"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
