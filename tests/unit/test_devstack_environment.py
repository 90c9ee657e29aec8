"""Intrinsic resolution and per-function environments of the local stack."""

from __future__ import annotations

import os
import threading
import time

import pytest

from devstack import template as tpl
from devstack.intrinsics import IntrinsicError, Resolver, parameter_values, parse_overrides
from devstack.runtime import EnvironmentGate
from devstack.stack import Stack, http_routes, resolve_environment, split_environments

TEMPLATE = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev"},
        "Ttl": {"Type": "Number", "Default": 300},
        "Required": {"Type": "String"},
    },
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
    "Mappings": {"Sizes": {"dev": {"Memory": 128}}},
    "Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table"},
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Key": {"Type": "AWS::KMS::Key"},
        "Other": {"Type": "AWS::SNS::Topic"},
    },
}


def resolver(**overrides: str) -> Resolver:
    params = parameter_values(TEMPLATE, {"Required": "r", **overrides})
    return Resolver(
        TEMPLATE,
        params,
        refs={"Table": "TableName", "Queue": "http://127.0.0.1:5000/123456789012/q", "Key": "key-id"},
        attrs={
            ("Queue", "Arn"): "arn:aws:sqs:us-east-1:123456789012:q",
            ("Queue", "QueueName"): "q",
            ("Key", "Arn"): "arn:aws:kms:us-east-1:123456789012:key/key-id",
        },
    )


def test_parameters_defaults_overrides_and_missing():
    assert parameter_values(TEMPLATE, {"Required": "x"}) == {"Stage": "dev", "Ttl": "300", "Required": "x"}
    assert parameter_values(TEMPLATE, {"Required": "x", "Ttl": "1"})["Ttl"] == "1"
    with pytest.raises(IntrinsicError):
        parameter_values(TEMPLATE, {})
    with pytest.raises(IntrinsicError):
        parameter_values(TEMPLATE, {"Required": "x", "Nope": "1"})
    assert parse_overrides("A=1  B=two=2") == {"A": "1", "B": "two=2"}
    with pytest.raises(IntrinsicError):
        parse_overrides("A")


def test_environment_resolution_short_and_long_forms():
    r = resolver()
    variables = {
        "TABLE": tpl.Tagged("Ref", "Table"),
        "QUEUE_URL": {"Ref": "Queue"},
        "QUEUE_ARN": tpl.Tagged("GetAtt", "Queue.Arn"),
        "QUEUE_NAME": {"Fn::GetAtt": ["Queue", "QueueName"]},
        "KEY_ARN": tpl.Tagged("GetAtt", "Key.Arn"),
        "STAGE": tpl.Tagged("Ref", "Stage"),
        "TTL": tpl.Tagged("Ref", "Ttl"),
        "LABEL": tpl.Tagged("Sub", "${AWS::StackName}-${Stage}-${Queue.QueueName}-${!Literal}"),
        "SUB_VARS": tpl.Tagged("Sub", ["${X}/${Table}", {"X": tpl.Tagged("Ref", "AWS::Region")}]),
        "JOINED": {"Fn::Join": [":", ["a", {"Ref": "Stage"}]]},
        "IF": tpl.Tagged("If", ["IsProd", "big", "small"]),
        "NOVALUE": tpl.Tagged("If", ["IsProd", "x", tpl.Tagged("Ref", "AWS::NoValue")]),
        "MAP": tpl.Tagged("FindInMap", ["Sizes", tpl.Tagged("Ref", "Stage"), "Memory"]),
        "LITERAL": "plain",
        "NUMBER": 5,
        "FLAG": True,
    }
    assert resolve_environment(variables, r) == {
        "TABLE": "TableName",
        "QUEUE_URL": "http://127.0.0.1:5000/123456789012/q",
        "QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "QUEUE_NAME": "q",
        "KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/key-id",
        "STAGE": "dev",
        "TTL": "300",
        "LABEL": "billing-local-dev-q-${Literal}",
        "SUB_VARS": "us-east-1/TableName",
        "JOINED": "a:dev",
        "IF": "small",
        "MAP": "128",
        "LITERAL": "plain",
        "NUMBER": "5",
        "FLAG": "true",
    }
    assert resolve_environment({"IF": tpl.Tagged("If", ["IsProd", "big", "small"])}, resolver(Stage="prod")) == {
        "IF": "big"
    }


def test_unmodelled_resources_and_unknown_names():
    r = resolver()
    assert r.resolve(tpl.Tagged("Ref", "Other")) == "Other"
    assert r.resolve(tpl.Tagged("GetAtt", "Other.TopicArn")).endswith(":Other/TopicArn")
    with pytest.raises(IntrinsicError):
        r.resolve(tpl.Tagged("Ref", "Missing"))
    with pytest.raises(IntrinsicError):
        r.resolve(tpl.Tagged("ImportValue", "x"))


def test_split_environments_shares_agreeing_variables_and_isolates_conflicts():
    envs = {
        "A": {"TABLE": "t", "MODE": "a", "POWERTOOLS_SERVICE_NAME": "a"},
        "B": {"TABLE": "t", "MODE": "b", "POWERTOOLS_SERVICE_NAME": "b", "ONLY_B": "x"},
        "C": {"TABLE": "t", "POWERTOOLS_SERVICE_NAME": "c"},
    }
    base, overlays = split_environments(envs)
    assert base == {"TABLE": "t", "ONLY_B": "x"}
    assert overlays == {"A": {"MODE": "a"}, "B": {"MODE": "b"}}


def test_the_repository_template_resolves_and_has_no_conflicts():
    template = tpl.load()
    stack = Stack(template, tpl.ROOT, Resolver(template, parameter_values(template)))
    from devstack.stack import base_references

    base_references(template, stack.resolver)
    stack.resolver.refs.update({"EntitiesTable": "EntitiesTable", "EventsTable": "EventsTable"})
    functions = tpl.functions(template)
    envs = {n: resolve_environment(f.environment, stack.resolver) for n, f in functions.items()}
    base, overlays = split_environments(envs)
    assert overlays == {}
    assert base["ENTITIES_TABLE"] == "EntitiesTable" and base["STAGE"] == "dev"
    routes = http_routes(stack, functions)
    assert routes and all(r.authorizer is not None for r in routes)
    authorizer = routes[0].authorizer
    assert authorizer is not None
    assert authorizer.function == "AuthorizerFunction" and authorizer.identity_headers == ["x-api-key"]
    assert authorizer.ttl_seconds == 300 and authorizer.simple_responses


def test_gate_runs_an_overlay_alone_and_restores_the_environment():
    changes = []
    gate = EnvironmentGate(on_change=lambda: changes.append(os.environ.get("DEVSTACK_GATE_TEST")))
    seen = []
    reader_inside = threading.Event()
    release = threading.Event()

    def reader():
        with gate.shared():
            reader_inside.set()
            release.wait(5)
            seen.append(("reader", os.environ.get("DEVSTACK_GATE_TEST")))

    def writer():
        with gate.exclusive({"DEVSTACK_GATE_TEST": "overlay"}):
            seen.append(("writer", os.environ.get("DEVSTACK_GATE_TEST")))

    t1 = threading.Thread(target=reader)
    t1.start()
    reader_inside.wait(5)
    t2 = threading.Thread(target=writer)
    t2.start()
    time.sleep(0.1)
    assert seen == [], "the writer waits for the running reader"
    release.set()
    t1.join(5)
    t2.join(5)
    assert seen == [("reader", None), ("writer", "overlay")]
    assert "DEVSTACK_GATE_TEST" not in os.environ
    assert changes == ["overlay", None]


def test_a_short_dev_key_stops_the_stack_with_one_clear_line():
    import argparse

    from devstack.app import Config

    args = argparse.Namespace(template=None, ready_file=None, parameter_overrides=None)
    with pytest.raises(SystemExit) as short:
        Config.from_environment({"BILLING_DEV_API_KEY": "too-short"}, args)
    message = str(short.value.code)
    assert "\n" not in message and "at least 16 characters" in message and "(it has 9)" in message
    assert Config.from_environment({"BILLING_DEV_API_KEY": "a" * 16}, args).dev_api_key == "a" * 16
    assert Config.from_environment({}, args).dev_api_key is None
