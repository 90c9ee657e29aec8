"""The embedded AWS for tests: moto's server on loopback, tables and queues built from template.yaml."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from devstack.stack import Stack

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def point_environment_at(endpoint: str, table_names: dict[str, str]) -> None:
    """Set what the template's Globals give every function, resolved for the embedded AWS."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "BILLING_AWS_ENDPOINT_URL": endpoint,
            "ENTITIES_TABLE": table_names["EntitiesTable"],
            "EVENTS_TABLE": table_names["EventsTable"],
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_NAMESPACE": "Billing",
            "POWERTOOLS_SERVICE_NAME": "billing-tests",
        }
    )
    from billing import wiring
    from billing.settings import reset_settings

    reset_settings()
    wiring.reset()


def provision_template(endpoint: str, overrides: dict[str, str] | None = None, function: str | None = None) -> Stack:
    """Build everything template.yaml declares on the embedded AWS and give this process what the functions see.

    The same code as the local stack: tables, queues and keys are provisioned, every function's environment is
    resolved, the variables they share are exported (plus ``function``'s own where functions disagree), and the
    shared package is pointed at ``endpoint``. Used by the test tiers and the in-process benchmarks.
    """
    from devstack import template as tpl
    from devstack.intrinsics import parameter_values
    from devstack.stack import provision, resolve_environment, split_environments

    template = tpl.load()
    parameters = parameter_values(template, overrides or {})
    stack = provision(template, tpl.ROOT, parameters, lambda service: aws_client(service, endpoint))
    environments = {
        name: resolve_environment(fn.environment, stack.resolver) for name, fn in tpl.functions(template).items()
    }
    base, overlays = split_environments(environments)
    os.environ.update(base)
    if function is not None:
        os.environ.update(overlays.get(function, {}))
    point_environment_at(endpoint, stack.tables)
    return stack
