"""Template tier: SAM's own validation and build, plus the project's conventions as invariants."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import template as tpl

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
TEMPLATE = tpl.load()
FUNCTIONS = tpl.functions(TEMPLATE)


def _sam_env() -> dict[str, str]:
    python = subprocess.run([str(ROOT / "tools" / "find-python")], capture_output=True, text=True, check=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(python.stdout.strip()).parent}{os.pathsep}{env['PATH']}"
    env["SAM_CLI_TELEMETRY"] = "0"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def _require_sam() -> None:
    if not SAM.exists():
        raise AssertionError(f"{SAM} is missing: run `make tools` (make test does it)")


def test_sam_validate_lint() -> None:
    _require_sam()
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(ROOT / "template.yaml")],
        cwd=ROOT,
        env=_sam_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_for_python313(tmp_path: Path) -> None:
    _require_sam()
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [
            str(SAM),
            "build",
            "--template-file",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(ROOT / ".aws-sam" / "cache"),
            "--cached",
            "--parallel",
        ],
        cwd=ROOT,
        env=_sam_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    built = tpl.load(build_dir / "template.yaml")
    for name in FUNCTIONS:
        code = build_dir / name
        assert (code / "app.py").exists(), f"{name} was not built"
    # the layers carry the shared package and the pinned dependencies
    assert (build_dir / "BillingLayer" / "python" / "billing" / "http.py").exists()
    assert (build_dir / "DependenciesLayer" / "python" / "pydantic").is_dir()
    assert set(tpl.resources(built, "AWS::Serverless::Function")) == set(FUNCTIONS)
    shutil.rmtree(build_dir, ignore_errors=True)


def test_runtime_is_python313() -> None:
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    for name, fn in FUNCTIONS.items():
        assert fn.properties.get("Runtime", "python3.13") == "python3.13", name


def test_every_function_has_its_own_log_group_with_retention() -> None:
    groups = tpl.resources(TEMPLATE, "AWS::Logs::LogGroup")
    used = set()
    for name, fn in FUNCTIONS.items():
        ref = (fn.properties.get("LoggingConfig") or {}).get("LogGroup")
        assert isinstance(ref, tpl.Tagged) and ref.tag == "Ref", f"{name} has no LoggingConfig.LogGroup !Ref"
        assert ref.value in groups, f"{name}: {ref.value} is not a log group of the template"
        assert ref.value not in used, f"{name} shares log group {ref.value}"
        used.add(ref.value)
        assert "RetentionInDays" in groups[ref.value]["Properties"], f"{ref.value} keeps logs forever"


def _event_files() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in (ROOT / "events").rglob("*.json"):
        found.setdefault(path.stem.split("__")[0], []).append(path)
    return found


def test_every_function_has_code_and_a_sample_event() -> None:
    events = _event_files()
    for name, fn in FUNCTIONS.items():
        assert fn.module_path.exists(), f"{name}: {fn.module_path} is missing"
        assert fn.code_uri.name in events, f"{name}: no sample event events/**/{fn.code_uri.name}.json"


def test_every_function_folder_is_deployed() -> None:
    declared = {fn.code_uri.name for fn in FUNCTIONS.values()}
    on_disk = {p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and (p / "app.py").exists()}
    assert on_disk == declared


SHARED_POLICIES = tpl.resources(TEMPLATE, "AWS::IAM::ManagedPolicy")


def _shared_statements(policy: Any) -> list[dict[str, Any]] | None:
    """The statements of ``!Ref <a managed policy of this template>``; None for anything else."""
    if isinstance(policy, tpl.Tagged) and policy.tag == "Ref" and policy.value in SHARED_POLICIES:
        return list(SHARED_POLICIES[policy.value]["Properties"]["PolicyDocument"]["Statement"])
    return None


def _statements(fn: tpl.Function) -> list[dict]:
    """Every statement a function's role gets: its inline ones and those of the template's shared policies."""
    out = []
    for policy in fn.properties.get("Policies") or []:
        shared = _shared_statements(policy)
        if shared is not None:
            out.extend(shared)
        elif isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
        else:
            # AWS managed policies, SAM policy templates and outside ARNs are not reviewed here: write them out
            raise AssertionError(f"{fn.logical_id}: policies must be written out, found {policy!r}")
    return out


def _key(statement: dict[str, Any]) -> str:
    import json

    return json.dumps(statement, sort_keys=True, default=repr)


def test_shared_policies_are_used_and_not_repeated_inline() -> None:
    """What several functions need is written once, as a managed policy of the template."""
    assert SHARED_POLICIES
    used: set[str] = set()
    shared = {
        name: {_key(s) for s in statements}
        for name in SHARED_POLICIES
        if (statements := _shared_statements(tpl.Tagged("Ref", name)))
    }
    inline_counts: dict[str, int] = {}
    for name, fn in FUNCTIONS.items():
        inline: set[str] = set()
        for policy in fn.properties.get("Policies") or []:
            if _shared_statements(policy) is not None:
                used.add(policy.value)
                continue
            inline.update(_key(statement) for statement in policy["Statement"])
        for statement in inline:
            inline_counts[statement] = inline_counts.get(statement, 0) + 1
        for policy_name, statements in shared.items():
            assert not statements <= inline, f"{name} writes out {policy_name} inline instead of referring to it"
    assert used == set(SHARED_POLICIES), f"shared policies no function uses: {set(SHARED_POLICIES) - used}"
    repeated = {s: n for s, n in inline_counts.items() if n >= 10}
    assert not repeated, f"statements written inline 10 times or more, make them a shared policy: {repeated}"


def test_least_privilege_no_wildcard_actions_or_resources() -> None:
    for name, fn in FUNCTIONS.items():
        for statement in _statements(fn):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                assert "*" not in action, f"{name}: wildcard action {action}"
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                assert resource != "*", f"{name}: wildcard resource"


def _on_rate_limit_table_only(statement: dict[str, Any]) -> bool:
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return all(
        isinstance(r, tpl.Tagged) and r.value in ("RateLimitTable.Arn", ["RateLimitTable", "Arn"]) for r in resources
    )


def test_read_only_functions_get_read_only_policies() -> None:
    """A GET function writes nothing but its API key's request counter."""
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    for name, fn in FUNCTIONS.items():
        for ev in fn.events.values():
            if ev.get("Type") == "HttpApi" and ev["Properties"]["Method"].upper() == "GET":
                for statement in _statements(fn):
                    if _on_rate_limit_table_only(statement):
                        assert statement["Action"] == ["dynamodb:UpdateItem"], name
                        continue
                    assert not writes & set(statement["Action"]), f"{name} serves GET but may write"


def test_every_api_function_may_count_requests_and_no_other_function_may() -> None:
    for name, fn in FUNCTIONS.items():
        serves_api = any(ev.get("Type") == "HttpApi" for ev in fn.events.values())
        counting = [s for s in _statements(fn) if _on_rate_limit_table_only(s)]
        if serves_api:
            assert [s["Action"] for s in counting] == [["dynamodb:UpdateItem"]], f"{name}: per-key limit not allowed"
        else:
            assert not counting, f"{name} does not serve the API but may write the rate-limit table"


def test_routes_are_under_api_v1_and_unique() -> None:
    seen = set()
    for name, fn in FUNCTIONS.items():
        for ev in fn.events.values():
            if ev.get("Type") != "HttpApi":
                continue
            props = ev["Properties"]
            assert props["Path"].startswith("/api/v1/"), f"{name}: {props['Path']}"
            key = (props["Method"].upper(), props["Path"])
            assert key not in seen, f"duplicate route {key}"
            seen.add(key)


def test_api_is_behind_the_api_key_authorizer_with_cache() -> None:
    api = TEMPLATE["Resources"]["HttpApi"]["Properties"]
    auth = api["Auth"]
    assert auth["DefaultAuthorizer"] == "ApiKeyAuthorizer"
    authorizer = auth["Authorizers"]["ApiKeyAuthorizer"]
    assert authorizer["Identity"]["Headers"] == ["x-api-key"]
    assert authorizer["EnableSimpleResponses"] is True
    assert isinstance(authorizer["Identity"]["ReauthorizeEvery"], tpl.Tagged)
    assert "ThrottlingRateLimit" in api["DefaultRouteSettings"]


def test_sqs_consumers_report_partial_failures_and_have_dlqs() -> None:
    queues = tpl.resources(TEMPLATE, "AWS::SQS::Queue")
    for name, fn in FUNCTIONS.items():
        for ev in fn.events.values():
            if ev.get("Type") != "SQS":
                continue
            props = ev["Properties"]
            assert "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []), name
            queue = props["Queue"]
            assert isinstance(queue, tpl.Tagged) and queue.tag == "GetAtt", name
            queue_id = queue.value.split(".")[0] if isinstance(queue.value, str) else queue.value[0]
            qprops = queues[queue_id]["Properties"]
            assert "RedrivePolicy" in qprops, f"{queue_id} has no DLQ"
            timeout = int(fn.properties.get("Timeout", 10))
            assert int(qprops.get("VisibilityTimeout", 30)) >= 6 * timeout, f"{queue_id} visibility < 6x timeout"


EPHEMERAL_TABLES = {"RateLimitTable"}


def test_the_rate_limit_table_is_on_demand_encrypted_and_expires_its_items() -> None:
    resource = TEMPLATE["Resources"]["RateLimitTable"]
    props = resource["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize("logical", sorted(set(tpl.resources(TEMPLATE, "AWS::DynamoDB::Table")) - EPHEMERAL_TABLES))
def test_tables_are_on_demand_recoverable_and_encrypted(logical: str) -> None:
    props = TEMPLATE["Resources"][logical]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert isinstance(props["DeletionProtectionEnabled"], tpl.Tagged)
    assert TEMPLATE["Resources"][logical]["DeletionPolicy"] == "Retain"


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _reaches(start: Path, target: str) -> bool:
    """Whether ``start`` imports the ``billing`` module ``target``, directly or through other billing modules."""
    package = ROOT / "layers" / "billing"
    seen: set[str] = set()
    todo = [n for n in _imports(start) if n.startswith("billing")]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name in seen:
            continue
        seen.add(name)
        module = package / (name.replace(".", "/") + ".py")
        if module.exists():
            todo.extend(n for n in _imports(module) if n.startswith("billing"))
    return False


def _timeout(fn: tpl.Function) -> float:
    return float(fn.properties.get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"]))


def test_one_aws_call_gives_up_within_every_functions_timeout() -> None:
    """A persistent AWS fault is answered (429/503) by the function, not cut off by its timeout."""
    from billing import wiring
    from billing.store import lean

    params = TEMPLATE["Parameters"]
    worst = wiring.worst_case_seconds(
        int(params["AwsCallAttempts"]["Default"]),
        float(params["AwsConnectTimeout"]["Default"]),
        float(params["AwsReadTimeout"]["Default"]),
    )
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert {"BILLING_AWS_MAX_ATTEMPTS", "BILLING_AWS_CONNECT_TIMEOUT", "BILLING_AWS_READ_TIMEOUT"} <= set(env)
    authorizer = FUNCTIONS["AuthorizerFunction"]
    # The authorizer reads keys with its own standard-library client, never botocore's.
    assert not _reaches(authorizer.code_uri / "app.py", "billing.wiring")
    assert lean.worst_case_seconds() + 1 <= _timeout(authorizer)
    for name, fn in FUNCTIONS.items():
        if name != "AuthorizerFunction":
            assert worst + 1 <= _timeout(fn), f"{name}: one AWS call may take {worst} s of its {_timeout(fn)} s"


def test_one_stripe_call_gives_up_within_the_timeout_of_every_function_that_calls_stripe() -> None:
    """Calling Stripe needs a connection's secret key, which needs kms:Decrypt: those functions are the callers, and
    the two that check a key given in the request."""
    from billing import stripe_gateway

    worst = stripe_gateway.worst_case_seconds()
    decrypting = {name for name, fn in FUNCTIONS.items() if any("kms:Decrypt" in s["Action"] for s in _statements(fn))}
    # The webhook intake decrypts only the signing secret: it verifies signatures locally and never calls Stripe.
    assert "WebhooksStripeIntakeFunction" in decrypting
    # Creating or updating a connection checks the secret key given in the request with Stripe (no decryption).
    checking = {"ConnectionsCreateFunction", "ConnectionsUpdateFunction"}
    callers = (decrypting - {"WebhooksStripeIntakeFunction"}) | checking
    assert all(_reaches(FUNCTIONS[name].code_uri / "app.py", "billing.stripe_gateway") for name in callers)
    assert {"PaymentsCreateFunction", "StripeSyncWorkerFunction", "WebhooksStripeProcessorFunction"} <= callers
    for name in callers:
        fn = FUNCTIONS[name]
        assert worst + 1 <= _timeout(fn), f"{name}: one Stripe call may take {worst} s of its {_timeout(fn)} s"
        if any(ev.get("Type") == "HttpApi" for ev in fn.events.values()):
            assert _timeout(fn) <= 29, f"{name}: API Gateway waits at most 30 s for an HTTP API integration"


def _block_lines(text: str, logical: str) -> int:
    """Lines of one resource's block in template.yaml, from its name to the next resource, less blanks and comments."""
    lines = text.splitlines()
    start = lines.index(f"  {logical}:")
    count = 1
    for line in lines[start + 1 :]:
        if line.startswith("  ") and not line.startswith("   ") and not line.startswith("  #"):
            break
        if line.strip() and not line.lstrip().startswith("#"):
            count += 1
    return count


def test_an_endpoint_costs_at_most_15_template_lines() -> None:
    """What every function shares lives in Globals and the shared policies, so an endpoint stays short."""
    text = tpl.TEMPLATE.read_text()
    for name, fn in FUNCTIONS.items():
        if not any(ev.get("Type") == "HttpApi" for ev in fn.events.values()):
            continue
        log_group = fn.properties["LoggingConfig"]["LogGroup"].value
        lines = _block_lines(text, name) + _block_lines(text, log_group)
        assert lines <= 15, f"{name} and its log group take {lines} lines of template.yaml"
