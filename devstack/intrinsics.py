"""CloudFormation intrinsic functions, resolved against the local stack's physical resources.

Covers what a SAM template uses in properties and environment variables: ``Ref``, ``Fn::GetAtt``,
``Fn::Sub``, ``Fn::Join``, ``Fn::If`` with the condition functions, ``Fn::Select``, ``Fn::Split``,
``Fn::FindInMap``, ``Fn::Base64`` and the pseudo parameters. Both the YAML short form (``!Ref``) and the
long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``) are understood.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

from devstack.events import ACCOUNT, REGION
from devstack.template import Tagged

log = logging.getLogger("devstack")

STACK_NAME = "billing-local"


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_SUB = re.compile(r"\$\{([^}]+)\}")


class IntrinsicError(ValueError):
    """A template value that cannot be resolved locally."""


def intrinsic(value: Any) -> tuple[str, Any] | None:
    """``(function, argument)`` when ``value`` is an intrinsic function call, else ``None``."""
    if isinstance(value, Tagged):
        return value.tag.removeprefix("Fn::"), value.value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return "Ref", arg
        if key.startswith("Fn::"):
            return key[4:], arg
    return None


def parameter_values(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Each parameter's value: its override, else its default (as CloudFormation passes it: a string)."""
    overrides = overrides or {}
    declared = template.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise IntrinsicError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    out = {}
    for name, spec in declared.items():
        if name in overrides:
            out[name] = str(overrides[name])
        elif "Default" in (spec or {}):
            default = spec["Default"]
            out[name] = ",".join(map(str, default)) if isinstance(default, list) else _text(default)
        else:
            raise IntrinsicError(f"template parameter {name} has no default; pass it as an override")
    return out


def parse_overrides(text: str) -> dict[str, str]:
    """``"A=1 B=two"`` (the ``sam deploy --parameter-overrides`` shorthand) → ``{"A": "1", "B": "two"}``."""
    out = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise IntrinsicError(f"parameter override {part!r} is not NAME=VALUE")
        out[name] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Resolver:
    """Resolve intrinsics with ``refs`` (logical id → ``Ref`` value) and ``attrs`` ((id, attribute) → value)."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        refs: dict[str, str] | None = None,
        attrs: dict[tuple[str, str], str] | None = None,
        stack_name: str = STACK_NAME,
    ) -> None:
        self.template = template
        self.parameters = parameters
        self.refs: dict[str, str] = refs if refs is not None else {}
        self.attrs: dict[tuple[str, str], str] = attrs if attrs is not None else {}
        self.pseudo: dict[str, Any] = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}

    # -- references --------------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in (self.template.get("Resources") or {}):
            # A resource the local stack does not model: its logical id stands in for the physical id.
            log.debug("Ref %s: not provisioned locally, using the logical id", name)
            return name
        raise IntrinsicError(f"Ref to unknown name {name!r}")

    def get_att(self, logical: str, attribute: str) -> str:
        if (logical, attribute) in self.attrs:
            return self.attrs[(logical, attribute)]
        if logical not in (self.template.get("Resources") or {}):
            raise IntrinsicError(f"GetAtt of unknown resource {logical!r}")
        log.debug("GetAtt %s.%s: not provisioned locally, using a placeholder ARN", logical, attribute)
        return f"arn:aws:local:{REGION}:{ACCOUNT}:{logical}/{attribute}"

    # -- conditions --------------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise IntrinsicError(f"unknown condition {name!r}")
            self._conditions[name] = self._truth(spec)
        return self._conditions[name]

    def _truth(self, value: Any) -> bool:
        call = intrinsic(value)
        if call is None and isinstance(value, dict) and set(value) == {"Condition"}:
            call = ("Condition", value["Condition"])
        if call is None:
            if isinstance(value, bool):
                return value
            raise IntrinsicError(f"not a condition: {value!r}")
        fn, arg = call
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Equals":
            left, right = (self.resolve(v) for v in arg)
            return _text(left) == _text(right)
        if fn == "Not":
            return not self._truth(arg[0])
        if fn == "And":
            return all(self._truth(v) for v in arg)
        if fn == "Or":
            return any(self._truth(v) for v in arg)
        raise IntrinsicError(f"not a condition function: {fn}")

    # -- values ------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside ``value``; ``AWS::NoValue`` removes keys and list items."""
        call = intrinsic(value)
        if call is not None:
            return self._call(*call)
        if isinstance(value, dict):
            out = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        return value

    def text(self, value: Any) -> str:
        resolved = self.resolve(value)
        if isinstance(resolved, dict | list):
            return json.dumps(resolved)
        return _text(resolved)

    def _call(self, fn: str, arg: Any) -> Any:
        if fn == "Ref":
            return self.ref(self.resolve(arg))
        if fn == "GetAtt":
            if isinstance(arg, str):
                logical, _, attribute = arg.partition(".")
            else:
                logical, attribute = self.resolve(arg[0]), self.resolve(arg[1])
            return self.get_att(logical, attribute)
        if fn == "Sub":
            if isinstance(arg, list):
                text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
            else:
                text, variables = arg, {}
            return self._sub(text, variables)
        if fn == "Join":
            delimiter, items = arg
            return delimiter.join(_text(v) for v in self.resolve(items))
        if fn == "If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if fn == "Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn == "Split":
            delimiter, source = arg
            return _text(self.resolve(source)).split(delimiter)
        if fn == "FindInMap":
            name, first, second = (self.resolve(v) for v in arg)
            return self.template["Mappings"][name][first][second]
        if fn == "Base64":
            return base64.b64encode(_text(self.resolve(arg)).encode()).decode()
        if fn == "GetAZs":
            return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
        if fn in ("Equals", "Not", "And", "Or", "Condition"):
            return self._truth({f"Fn::{fn}": arg} if fn != "Condition" else Tagged("Condition", arg))
        raise IntrinsicError(f"Fn::{fn} is not supported by the local stack")

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and name.split(".", 1)[0] in (self.template.get("Resources") or {}):
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return _text(self.ref(name))

        return _SUB.sub(replace, text)
