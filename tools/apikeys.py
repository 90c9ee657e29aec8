"""Manage tenants, environments and API keys (``make apikey ARGS="..."``).

Against the local stack::

    python tools/apikeys.py --endpoint-url http://127.0.0.1:5000 --table EntitiesTable \\
        create --tenant "Acme" --environment production

With neither ``--table`` nor ``--stack-name``, the local stack is used (``make run``; port from
``LOCAL_AWS_PORT``, default 5000; table ``EntitiesTable``), so ``make apikey ARGS="create --tenant Acme
--environment production"`` works next to ``make run``.

Against a deployed stack (reads the ``EntitiesTableName`` output with CloudFormation)::

    python tools/apikeys.py --stack-name billing-dev create --tenant "Acme" --environment production

Subcommands: ``create`` (tenant + environment + key, the key printed once), ``add-environment`` (one more
environment of an existing tenant, e.g. ``sandbox`` beside ``production``, with its first key), ``create-key`` (a key
for an existing environment), ``rotate`` (a new key for the same environment; the old one keeps working until it is
revoked, so clients move over without an outage), ``list`` (a tenant's keys: id, name, status, hint; never the
key), ``revoke``.
Keys are stored only as their SHA-256 hash. ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "billing", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from billing.errors import BillingError  # noqa: E402
from billing.services import apikeys  # noqa: E402
from billing.store.dynamo import ConditionFailed, Table  # noqa: E402


def _client_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"region_name": args.region}
    if args.endpoint_url:
        # The embedded AWS accepts any credentials; never send real ones to it.
        out.update(endpoint_url=args.endpoint_url, aws_access_key_id="testing", aws_secret_access_key="testing")
    elif args.profile:
        return {**out, "_profile": args.profile}
    return out


def _client(service: str, args: argparse.Namespace) -> Any:
    options = _client_args(args)
    profile = options.pop("_profile", None)
    session = boto3.Session(profile_name=profile) if profile else boto3
    return session.client(service, **options)


def table_name(args: argparse.Namespace) -> str:
    if not args.table and not args.stack_name:
        # Neither given: the local stack (``make run``), on its default or LOCAL_AWS_PORT port.
        args.endpoint_url = args.endpoint_url or f"http://127.0.0.1:{os.environ.get('LOCAL_AWS_PORT') or 5000}"
        return "EntitiesTable"
    if args.table:
        return str(args.table)
    stacks = _client("cloudformation", args).describe_stacks(StackName=args.stack_name)["Stacks"]
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == "EntitiesTableName":
            return str(output["OutputValue"])
    raise SystemExit(f"stack {args.stack_name} has no EntitiesTableName output")


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def cmd_create(table: Table, args: argparse.Namespace) -> None:
    tenant = apikeys.create_tenant(table, args.tenant, args.tenant_id)
    environment = apikeys.create_environment(table, tenant["id"], args.environment, args.environment_id)
    record, key = apikeys.create_key(table, tenant["id"], environment["id"], args.name, rate_limit=args.rate_limit)
    _emit(
        args,
        {"tenant": tenant, "environment": environment, "key": record, "api_key": key},
        f"tenant       {tenant['id']} ({tenant['name']})\n"
        f"environment  {environment['id']} ({environment['name']})\n"
        f"key id       {record['key_id']}\n"
        f"API key      {key}\n\n"
        "The key is shown only this once; store it now.",
    )


def cmd_add_environment(table: Table, args: argparse.Namespace) -> None:
    environment = apikeys.create_environment(table, args.tenant_id, args.environment, args.environment_id)
    record, key = apikeys.create_key(table, args.tenant_id, environment["id"], args.name, rate_limit=args.rate_limit)
    _emit(
        args,
        {"environment": environment, "key": record, "api_key": key},
        f"environment  {environment['id']} ({environment['name']}) of tenant {args.tenant_id}\n"
        f"key id       {record['key_id']}\n"
        f"API key      {key}\n\n"
        "The key is shown only this once; store it now.",
    )


def cmd_rotate(table: Table, args: argparse.Namespace) -> None:
    record, key, old = apikeys.rotate_key(table, args.key_id)
    _emit(
        args,
        {"key": record, "api_key": key, "replaced": old},
        f"key id   {record['key_id']}\nAPI key  {key}\n\nThe key is shown only this once; store it now.\n"
        f"The old key {old['key_id']} ({old['hint']}) keeps working until you revoke it:\n"
        f"  revoke --key-id {old['key_id']}",
    )


def cmd_create_key(table: Table, args: argparse.Namespace) -> None:
    record, key = apikeys.create_key(table, args.tenant_id, args.environment_id, args.name, rate_limit=args.rate_limit)
    _emit(
        args,
        {"key": record, "api_key": key},
        f"key id   {record['key_id']}\nAPI key  {key}\n\nThe key is shown only this once; store it now.",
    )


def cmd_list(table: Table, args: argparse.Namespace) -> None:
    keys = apikeys.list_keys(table, args.tenant_id)
    rows = [
        f"{k['key_id']}  {k['environment_id']}  {k['status']:<8}  {k['hint']}  {k['name']}  {k['created_at']}"
        for k in keys
    ]
    _emit(args, {"keys": keys}, "\n".join(rows) if rows else "no keys")


def cmd_revoke(table: Table, args: argparse.Namespace) -> None:
    record = apikeys.revoke_key(table, args.key_id)
    _emit(args, {"key": record}, f"revoked {record['key_id']} ({record['hint']})")


RATE_LIMIT_HELP = "requests per window for this key (default: the deployment's ApiKeyRateLimit; 0: unlimited)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="apikeys", description="Manage tenants, environments and API keys.")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--stack-name", help="deployed stack: read its EntitiesTableName output")
    target.add_argument("--table", help="entities table name (e.g. EntitiesTable on the local stack)")
    p.add_argument("--endpoint-url", help="AWS endpoint, e.g. http://127.0.0.1:5000 for the local stack")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--profile", help="AWS profile (deployed stacks)")
    p.add_argument("--json", action="store_true", help="print JSON")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = p.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", parents=[common], help="create a tenant, an environment and a key (printed once)")
    create.add_argument("--tenant", required=True, help="tenant name")
    create.add_argument("--environment", required=True, help="environment name, e.g. production")
    create.add_argument("--name", default="default", help="key name")
    create.add_argument("--tenant-id", help="tenant id (default: generated)")
    create.add_argument("--environment-id", help="environment id (default: generated)")
    create.add_argument("--rate-limit", type=int, help=RATE_LIMIT_HELP)
    create.set_defaults(run=cmd_create)

    create_key = sub.add_parser("create-key", parents=[common], help="create a key for an existing environment")
    create_key.add_argument("--tenant-id", required=True)
    create_key.add_argument("--environment-id", required=True)
    create_key.add_argument("--name", default="default")
    create_key.add_argument("--rate-limit", type=int, help=RATE_LIMIT_HELP)
    create_key.set_defaults(run=cmd_create_key)

    add_env = sub.add_parser(
        "add-environment", parents=[common], help="add an environment to an existing tenant, with its first key"
    )
    add_env.add_argument("--tenant-id", required=True)
    add_env.add_argument("--environment", required=True, help="environment name, e.g. sandbox")
    add_env.add_argument("--environment-id", help="environment id (default: generated)")
    add_env.add_argument("--name", default="default", help="key name")
    add_env.add_argument("--rate-limit", type=int, help=RATE_LIMIT_HELP)
    add_env.set_defaults(run=cmd_add_environment)

    rotate = sub.add_parser("rotate", parents=[common], help="a new key beside an active one (revoke the old later)")
    rotate.add_argument("--key-id", required=True, help="the key to replace")
    rotate.set_defaults(run=cmd_rotate)

    listing = sub.add_parser("list", parents=[common], help="list a tenant's keys (hints only)")
    listing.add_argument("--tenant-id", required=True)
    listing.set_defaults(run=cmd_list)

    revoke = sub.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("--key-id", required=True)
    revoke.set_defaults(run=cmd_revoke)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        name = table_name(args)
        table = Table(_client("dynamodb", args), name)
        args.run(table, args)
    except BillingError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except ConditionFailed:
        print("error: a tenant or environment with that id already exists", file=sys.stderr)
        return 2
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
