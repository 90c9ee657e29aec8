"""Read ``template.yaml``: CloudFormation tags, resources, and the AWS objects it declares.

The local stack and the tests build tables and queues from here, so they cannot drift from the deployed shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class Tagged:
    """A CloudFormation intrinsic (``!Ref``, ``!GetAtt``, ``!Sub``...) kept as data."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"{self.tag}({self.value!r})"


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return Tagged(suffix, value)


_Loader.add_multi_constructor("!", _construct)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        return yaml.load(fh, Loader=_Loader)  # noqa: S506 - SafeLoader subclass with tag constructors


def resources(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in (template.get("Resources") or {}).items() if res.get("Type") == type_name}


def table_definitions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``CreateTable`` arguments (without ``TableName``) for every DynamoDB table, by logical id."""
    out = {}
    for name, res in resources(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        args: dict[str, Any] = {
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = [
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in props["GlobalSecondaryIndexes"]
            ]
        if props.get("TimeToLiveSpecification"):
            args["_ttl"] = props["TimeToLiveSpecification"]
        out[name] = args
    return out


def create_tables(ddb: Any, template: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Create every table of the template (idempotent). Returns logical id → physical table name."""
    existing = set(ddb.list_tables().get("TableNames", []))
    names = {}
    for logical, args in table_definitions(template).items():
        name = f"{prefix}{logical}"
        names[logical] = name
        if name in existing:
            continue
        ttl = args.pop("_ttl", None)
        ddb.create_table(TableName=name, **args)
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
    return names


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]]
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def module_path(self) -> Path:
        module = self.handler.rsplit(".", 1)[0]
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def functions(template: dict[str, Any], root: Path = ROOT) -> dict[str, Function]:
    """Every ``AWS::Serverless::Function`` with Globals applied (environment merged)."""
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    global_env = ((globals_fn.get("Environment") or {}).get("Variables")) or {}
    out = {}
    for name, res in resources(template, "AWS::Serverless::Function").items():
        props = res["Properties"]
        env = {**global_env, **(((props.get("Environment") or {}).get("Variables")) or {})}
        out[name] = Function(
            logical_id=name,
            code_uri=root / props["CodeUri"],
            handler=props.get("Handler") or globals_fn.get("Handler", "app.lambda_handler"),
            environment=env,
            events=props.get("Events") or {},
            properties={**globals_fn, **props},
        )
    return out
