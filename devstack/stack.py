"""Provision what ``template.yaml`` declares on the embedded AWS and describe how its functions are wired.

``provision`` creates every DynamoDB table, SQS queue (with its redrive policy), KMS key and alias, and
Secrets Manager secret, and records each resource's ``Ref`` value and attributes so every function's
environment resolves as CloudFormation would resolve it. Physical names are the template's explicit names
(``QueueName``, ``Name``...) or, where CloudFormation would generate one, the logical id.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import template as tpl
from devstack.events import ACCOUNT, REGION
from devstack.intrinsics import NO_VALUE, Resolver, intrinsic

log = logging.getLogger("devstack")

# Environment variables whose value differs per function only for labelling (logs carry one service name).
COSMETIC_ENV = frozenset({"POWERTOOLS_SERVICE_NAME"})

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


@dataclass
class Queue:
    logical_id: str
    name: str
    url: str
    arn: str
    fifo: bool
    visibility_timeout: int
    dead_letter_arn: str | None = None
    max_receive_count: int | None = None


@dataclass
class Stack:
    """The physical resources of the local stack and a resolver that knows all of them."""

    template: dict[str, Any]
    root: Path
    resolver: Resolver
    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def queue_by_arn(self, arn: str) -> Queue | None:
        return next((q for q in self.queues.values() if q.arn == arn), None)


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _attr_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def base_references(template: dict[str, Any], resolver: Resolver) -> None:
    """``Ref``/``GetAtt`` values of resources that need no provisioning: functions, APIs, log groups."""
    for logical, res in (template.get("Resources") or {}).items():
        kind = res.get("Type")
        props = res.get("Properties") or {}
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            name = props.get("FunctionName")
            name = resolver.text(name) if name is not None else logical
            resolver.refs[logical] = name
            resolver.attrs[(logical, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        elif kind in ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
            resolver.refs[logical] = "local"
            resolver.attrs[(logical, "ApiEndpoint")] = "http://127.0.0.1"
        elif kind == "AWS::Logs::LogGroup" and props.get("LogGroupName") is not None:
            name = resolver.text(props["LogGroupName"])
            resolver.refs[logical] = name
            resolver.attrs[(logical, "Arn")] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"


def provision(template: dict[str, Any], root: Path, parameters: dict[str, str], clients: Any) -> Stack:
    """Create the template's tables, keys, queues and secrets. ``clients(service)`` returns a boto3 client."""
    resolver = Resolver(template, parameters)
    stack = Stack(template, root, resolver)
    base_references(template, resolver)

    for logical, name in tpl.create_tables(clients("dynamodb"), template).items():
        stack.tables[logical] = name
        resolver.refs[logical] = name
        resolver.attrs[(logical, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        resolver.attrs[(logical, "StreamArn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/local"

    kms = None
    for logical, res in tpl.resources(template, "AWS::KMS::Key").items():
        kms = kms or clients("kms")
        props = resolver.resolve(res.get("Properties") or {})
        key_args = {k: props[k] for k in ("Description", "KeyUsage", "KeySpec") if k in props}
        meta = kms.create_key(**key_args)["KeyMetadata"]
        stack.keys[logical] = meta["KeyId"]
        resolver.refs[logical] = meta["KeyId"]
        resolver.attrs[(logical, "Arn")] = meta["Arn"]
        resolver.attrs[(logical, "KeyId")] = meta["KeyId"]
    for logical, res in tpl.resources(template, "AWS::KMS::Alias").items():
        kms = kms or clients("kms")
        props = resolver.resolve(res.get("Properties") or {})
        kms.create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        resolver.refs[logical] = props["AliasName"]

    _provision_queues(stack, clients)

    for logical, res in tpl.resources(template, "AWS::SecretsManager::Secret").items():
        props = resolver.resolve(res.get("Properties") or {})
        name = props.get("Name") or logical
        secret_args: dict[str, Any] = {"Name": name, "SecretString": _secret_string(props)}
        for key in ("Description", "KmsKeyId"):
            if key in props:
                secret_args[key] = props[key]
        arn = clients("secretsmanager").create_secret(**secret_args)["ARN"]
        stack.secrets[logical] = arn
        resolver.refs[logical] = arn
    return stack


def _secret_string(props: dict[str, Any]) -> str:
    if "SecretString" in props:
        return str(props["SecretString"])
    spec = props.get("GenerateSecretString") or {}
    value = secrets.token_urlsafe(max(8, int(spec.get("PasswordLength", 32))))[: int(spec.get("PasswordLength", 32))]
    if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
        body = json.loads(spec["SecretStringTemplate"])
        body[spec["GenerateStringKey"]] = value
        return json.dumps(body)
    return value


def _provision_queues(stack: Stack, clients: Any) -> None:
    resolver = stack.resolver
    declared = tpl.resources(stack.template, "AWS::SQS::Queue")
    if not declared:
        return
    sqs = clients("sqs")
    pending_redrive: dict[str, dict[str, Any]] = {}
    # First every queue without its redrive policy (a policy names another queue's ARN), then the policies.
    for logical, res in declared.items():
        raw = res.get("Properties") or {}
        props = resolver.resolve({k: v for k, v in raw.items() if k not in ("RedrivePolicy", "RedriveAllowPolicy")})
        fifo = _bool(props.get("FifoQueue", False))
        name = props.get("QueueName") or (f"{logical}.fifo" if fifo else logical)
        attributes = {k: _attr_text(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        if not fifo:
            attributes.pop("FifoQueue", None)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        stack.queues[logical] = Queue(logical, name, url, arn, fifo, int(props.get("VisibilityTimeout", 30)))
        resolver.refs[logical] = url
        resolver.attrs[(logical, "Arn")] = arn
        resolver.attrs[(logical, "QueueName")] = name
        resolver.attrs[(logical, "QueueUrl")] = url
        if "RedrivePolicy" in raw or "RedriveAllowPolicy" in raw:
            pending_redrive[logical] = raw
    for logical, raw in pending_redrive.items():
        queue = stack.queues[logical]
        attributes = {}
        if "RedrivePolicy" in raw:
            policy = resolver.resolve(raw["RedrivePolicy"])
            queue.dead_letter_arn = policy["deadLetterTargetArn"]
            queue.max_receive_count = int(policy["maxReceiveCount"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": queue.dead_letter_arn, "maxReceiveCount": queue.max_receive_count}
            )
        if "RedriveAllowPolicy" in raw:
            attributes["RedriveAllowPolicy"] = json.dumps(resolver.resolve(raw["RedriveAllowPolicy"]))
        sqs.set_queue_attributes(QueueUrl=queue.url, Attributes=attributes)


# ------------------------------------------------------------------------------------------------------
# Function environments
# ------------------------------------------------------------------------------------------------------


def resolve_environment(variables: dict[str, Any], resolver: Resolver) -> dict[str, str]:
    """A function's ``Environment.Variables`` as the Lambda runtime sees them: every value a string."""
    out = {}
    for name, value in variables.items():
        resolved = resolver.resolve(value)
        if resolved is NO_VALUE:
            continue
        out[name] = _attr_text(resolved)
    return out


def split_environments(
    environments: dict[str, dict[str, str]], cosmetic: frozenset[str] = COSMETIC_ENV
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Split per-function environments into one shared base and per-function overlays.

    Handlers share one process, hence one ``os.environ``. A variable every function that sets it sets to
    the same value goes into the base; a variable set to different values by different functions is a
    conflict and goes into the overlay of each function that sets it (that function then runs with its
    overlay applied, alone). Variables in ``cosmetic`` are left out of both.
    """
    values: dict[str, set[str]] = {}
    for env in environments.values():
        for name, value in env.items():
            if name not in cosmetic:
                values.setdefault(name, set()).add(value)
    conflicts = {name for name, seen in values.items() if len(seen) > 1}
    base = {name: next(iter(seen)) for name, seen in values.items() if name not in conflicts}
    overlays = {
        fn: {name: value for name, value in env.items() if name in conflicts} for fn, env in environments.items()
    }
    return base, {fn: overlay for fn, overlay in overlays.items() if overlay}


# ------------------------------------------------------------------------------------------------------
# Wiring read from the template: routes, authorizers, function URLs, SQS event sources, schedules
# ------------------------------------------------------------------------------------------------------


def logical_of(value: Any) -> str | None:
    """The logical id an ``!GetAtt X.Arn`` / ``!Ref X`` points at, if ``value`` is such a reference."""
    call = intrinsic(value)
    if call is None:
        return None
    fn, arg = call
    if fn == "Ref" and isinstance(arg, str):
        return arg
    if fn == "GetAtt":
        return arg.split(".", 1)[0] if isinstance(arg, str) else str(arg[0])
    return None


@dataclass
class AuthorizerSpec:
    name: str
    function: str
    identity_headers: list[str]
    identity_queries: list[str]
    ttl_seconds: int
    simple_responses: bool
    payload_version: str


@dataclass
class RouteSpec:
    method: str
    path: str
    function: str
    api: str
    authorizer: AuthorizerSpec | None


def http_routes(stack: Stack, functions: dict[str, tpl.Function]) -> list[RouteSpec]:
    """Every ``HttpApi`` event of every function, with the authorizer API Gateway would run for it."""
    apis = {
        logical: res.get("Properties") or {}
        for logical, res in tpl.resources(stack.template, "AWS::Serverless::HttpApi").items()
    }
    authorizers: dict[str, dict[str, AuthorizerSpec]] = {}
    defaults: dict[str, str | None] = {}
    for api, props in apis.items():
        auth = props.get("Auth") or {}
        defaults[api] = auth.get("DefaultAuthorizer")
        authorizers[api] = {}
        for name, spec in (auth.get("Authorizers") or {}).items():
            function = logical_of(spec.get("FunctionArn"))
            if function is None:
                log.warning("authorizer %s of %s is not a Lambda authorizer; its routes are open", name, api)
                continue
            identity = spec.get("Identity") or {}
            ttl = identity.get("ReauthorizeEvery", 300)
            authorizers[api][name] = AuthorizerSpec(
                name=name,
                function=function,
                identity_headers=[h.lower() for h in identity.get("Headers") or []],
                identity_queries=list(identity.get("QueryStrings") or []),
                ttl_seconds=int(stack.resolver.text(ttl)),
                simple_responses=_bool(spec.get("EnableSimpleResponses", False)),
                payload_version=str(spec.get("AuthorizerPayloadFormatVersion", "2.0")),
            )
    routes = []
    for fn in functions.values():
        for event in fn.events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api = logical_of(props.get("ApiId")) or "ServerlessHttpApi"
            method = str(props.get("Method", "ANY")).upper()
            path = props.get("Path", "$default")
            wanted = ((props.get("Auth") or {}).get("Authorizer")) or defaults.get(api)
            authorizer = None
            if wanted and wanted != "NONE":
                authorizer = authorizers.get(api, {}).get(wanted)
                if authorizer is None:
                    log.warning("route %s %s names unknown authorizer %s", method, path, wanted)
            routes.append(RouteSpec(method, path, fn.logical_id, api, authorizer))
    return routes


@dataclass
class EventSource:
    """An SQS event source mapping."""

    name: str
    function: str
    queue: Queue
    batch_size: int
    batching_window: int
    report_failures: bool
    max_concurrency: int | None
    enabled: bool


def sqs_sources(stack: Stack, functions: dict[str, tpl.Function]) -> list[EventSource]:
    out = []
    for fn in functions.values():
        for event_name, event in fn.events.items():
            if event.get("Type") != "SQS":
                continue
            raw = event.get("Properties") or {}
            queue_logical = logical_of(raw.get("Queue"))
            props = stack.resolver.resolve(raw)
            queue = stack.queues.get(queue_logical or "") or stack.queue_by_arn(str(props.get("Queue")))
            if queue is None:
                raise ValueError(f"{fn.logical_id}.{event_name}: queue {props.get('Queue')!r} is not in the template")
            scaling = props.get("ScalingConfig") or {}
            out.append(
                EventSource(
                    name=f"{fn.logical_id}{event_name}",
                    function=fn.logical_id,
                    queue=queue,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    max_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
                    enabled=_bool(props.get("Enabled", True)),
                )
            )
    return out


@dataclass
class FunctionUrl:
    function: str
    auth_type: str
    invoke_mode: str


def function_urls(functions: dict[str, tpl.Function]) -> list[FunctionUrl]:
    out = []
    for fn in functions.values():
        config = fn.properties.get("FunctionUrlConfig")
        if config:
            out.append(
                FunctionUrl(
                    fn.logical_id, str(config.get("AuthType", "NONE")), str(config.get("InvokeMode", "BUFFERED"))
                )
            )
    return out


@dataclass
class ScheduleSpec:
    """A schedule of the template: a function's ``Schedule``/``ScheduleV2`` event or a scheduler resource."""

    name: str
    kind: str
    expression: str
    enabled: bool
    input: str | None
    function: str | None = None
    queue: Queue | None = None
    description: str = ""


def schedules(stack: Stack, functions: dict[str, tpl.Function]) -> list[ScheduleSpec]:
    resolver = stack.resolver
    out = []
    for fn in functions.values():
        for event_name, event in fn.events.items():
            kind = event.get("Type")
            if kind not in ("Schedule", "ScheduleV2"):
                continue
            props = resolver.resolve(event.get("Properties") or {})
            state = props.get("State")
            enabled = _bool(props.get("Enabled", True)) if state is None else str(state).upper() == "ENABLED"
            raw_input = props.get("Input")
            out.append(
                ScheduleSpec(
                    name=f"{fn.logical_id}{event_name}",
                    kind=kind,
                    expression=str(props.get("Schedule") or props.get("ScheduleExpression")),
                    enabled=enabled,
                    input=None if raw_input is None else _attr_text(raw_input),
                    function=fn.logical_id,
                    description=str(props.get("Description", "")),
                )
            )
    for logical, res in tpl.resources(stack.template, "AWS::Scheduler::Schedule").items():
        raw = res.get("Properties") or {}
        target = raw.get("Target") or {}
        target_logical = logical_of(target.get("Arn"))
        props = resolver.resolve(raw)
        spec = ScheduleSpec(
            name=logical,
            kind="AWS::Scheduler::Schedule",
            expression=str(props["ScheduleExpression"]),
            enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
            input=None if props["Target"].get("Input") is None else _attr_text(props["Target"]["Input"]),
            description=str(props.get("Description", "")),
        )
        if target_logical in functions:
            spec.function = target_logical
        elif target_logical in stack.queues:
            spec.queue = stack.queues[target_logical]
        else:
            log.warning("schedule %s targets %s, which the local stack cannot invoke", logical, target.get("Arn"))
            continue
        out.append(spec)
    return out
