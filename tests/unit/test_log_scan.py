"""The log scanner of the end-to-end tier finds every kind of secret, key and card data in realistic log lines, masks
them in its messages, and stays quiet on what a local stack really logs."""

from __future__ import annotations

import json
import secrets as random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from billing.services.apikeys import generate_key
from devstack.server import loggable_target
from stripe_emulator.cards import CARDS
from tests.e2e.conftest import DEV_KEY
from tests.support.log_scan import card_number, is_epoch, luhn, mask, scan

STRIPE_KEY = "sk_test_" + random.token_hex(16)
WEBHOOK_SECRET = "whsec_" + random.token_hex(16)
API_KEY = generate_key()

# Stripe's documented test cards, as the emulator's docs list them (docs/stripe-emulator.md).
DOCUMENTED_CARDS = (
    "4242424242424242",
    "5555555555554444",
    "4000000000000002",
    "4000000000000341",
    "4000000000009995",
    "4000002500003155",
    "4000002760003184",
)


def powertools(message: Any, level: str = "INFO", **extra: Any) -> str:
    """A log line as the product's Powertools Logger writes it on the local stack."""
    record = {
        "level": level,
        "location": "lambda_handler:20",
        "message": message,
        "timestamp": "2026-11-25 22:46:11,214+0000",
        "service": "billing-local",
        "cold_start": False,
        "function_name": "ConnectionsCreateFunction",
        "function_memory_size": 512,
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:ConnectionsCreateFunction",
        "function_request_id": "c287e54f-7c11-4ebd-aa68-8045cbb0ff28",
        "tenant_id": "tenant_01M8AE6KJC53ZR4DNG9DD3FQTR",
        "environment_id": "env_01M8AE6KK9RY195G4RCVNBGBHH",
        **extra,
    }
    return json.dumps(record, separators=(",", ":"))


def http_event(headers: dict[str, str], body: Any) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event, as a handler that logged its event would print it."""
    return {
        "version": "2.0",
        "routeKey": "POST /api/v1/connections",
        "rawPath": "/api/v1/connections",
        "headers": {"content-type": "application/json", "host": "127.0.0.1:43531", **headers},
        "requestContext": {"requestId": "JKz3cgVQIAMEVvQ=", "timeEpoch": 1764110771214},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def kinds(text: str, **kwargs: Any) -> set[str]:
    return {f.kind for f in scan(text, **kwargs)}


# -- every kind is found ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["sk_test_", "sk_live_", "rk_test_", "rk_live_"])
def test_stripe_secret_and_restricted_keys_in_a_logged_event(prefix: str):
    key = prefix + "51HxAbCdEfGh0123456789"
    body = {"provider_type": "stripe", "encrypted_secret_data": {"secret_key": key}}
    line = powertools(http_event({"x-api-key": API_KEY}, body))
    assert "stripe_secret_key" in kinds(line)


def test_webhook_signing_secret():
    line = powertools("connection created", connection_id="conn_01M8AE6KYBPMASD6FXWRF87EKW", secret=WEBHOOK_SECRET)
    assert kinds(line) == {"webhook_secret"}


@pytest.mark.parametrize(
    "secret",
    [
        f"seti_1Nv0FGQ9VvD2SbLk_secret_{random.token_urlsafe(24)}",
        f"pi_3MtwBwLkdIwHu7ix_secret_{random.token_urlsafe(18)}",
    ],
    ids=["setup_intent", "payment_intent"],  # the same ids in every test process (pytest-xdist compares them)
)
def test_client_secrets_of_setup_and_payment_intents(secret: str):
    line = powertools("card setup session created", intent={"id": secret.split("_secret_")[0], "client_secret": secret})
    assert kinds(line) == {"client_secret"}


@pytest.mark.parametrize("key", [API_KEY, DEV_KEY], ids=["generated", "e2e-dev-key"])
def test_the_products_own_api_keys(key: str):
    line = powertools("API key refused", reason="the API key is not valid", key=key)
    assert kinds(line) == {"api_key"}
    assert kinds(f"devstack: api GET /api/v1/customers?api_key={key} -> - 401 0ms") == {"api_key"}


def test_authorization_header_values():
    logged = "devstack: message='Request to Stripe api' headers={'Authorization': 'Bearer tok_9f8e7d6c5b4a3210'}"
    assert kinds(logged) == {"authorization"}
    assert kinds(powertools(http_event({"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}, {}))) == {
        "authorization"
    }
    assert kinds("Authorization: Basic c2tfdGVzdDo=") == {"authorization"}


def test_x_api_key_header_values_whatever_their_format():
    assert "x_api_key" in kinds(powertools(http_event({"x-api-key": API_KEY}, {})))
    assert kinds("devstack: request headers {'x-api-key': 'some-opaque-key-1234'}") == {"x_api_key"}
    assert kinds("x-api-key: opaque0123456789") == {"x_api_key"}


def test_stripe_signature_header_values():
    signature = f"t=1764110771,v1={random.token_hex(32)}"
    event = http_event({"stripe-signature": signature}, {"id": "evt_FVHTnwDllgl68VDrKFDPgmd9"})
    assert kinds(powertools(event, function_name="WebhooksStripeIntakeFunction")) == {"stripe_signature"}
    assert kinds(f"Stripe-Signature: {signature}") == {"stripe_signature"}


@pytest.mark.parametrize("number", sorted(set(CARDS) | set(DOCUMENTED_CARDS)))
def test_every_emulator_test_card(number: str):
    assert luhn(number) and card_number(number)
    line = powertools("card payment not confirmed by Stripe", payment_id="pay_01M8AE6M21MPQ6GJQTJJ2Q4ZKK", card=number)
    assert kinds(line) == {"card_number"}
    assert kinds(f"devstack: message='Post details' post_data=card={number}&currency=usd") == {"card_number"}


@pytest.mark.parametrize("written", ["4242 4242 4242 4242", "4242-4242-4242-4242", "3782 822463 10005"])
def test_card_numbers_with_separators(written: str):
    assert kinds(f"stripe-emulator: checkout completed with card {written}.") == {"card_number"}


def test_cvc_and_cvv_values():
    assert kinds(powertools("card", card={"cvc": "123", "exp_month": 12})) == {"card_cvc"}
    assert kinds("post_data=card[number]=4000000000000002&card[cvc]=314") >= {"card_cvc", "card_number"}
    assert kinds("payer entered cvv=1234") == {"card_cvc"}


def test_a_number_field_of_digits_even_when_it_fails_the_luhn_check():
    assert not luhn("4000000000000001")
    assert kinds(powertools("card", card={"number": "4000000000000001"})) == {"card_number_field"}
    assert kinds(powertools("card", card={"number": "4242424242424242"})) == {"card_number_field", "card_number"}


def test_exact_secret_values_of_the_run_raw_or_url_encoded():
    secret = "correct horse/battery staple"
    line = f"devstack: api GET /api/v1/customers?q={quote(secret, safe='')} -> CustomersListFunction 200 21ms"
    assert kinds(line) == set()
    assert kinds(line, secrets={secret}) == {"known_secret"}
    assert kinds(powertools("x", note=secret), secrets={secret, "short"}) == {"known_secret"}


def test_url_encoded_secrets_and_cards():
    encoded = quote(json.dumps({"secret_key": STRIPE_KEY, "card": {"cvc": "123"}}), safe="")
    assert kinds(f"devstack: api GET /api/v1/customers?q={encoded} -> CustomersListFunction 200 21ms") == {
        "stripe_secret_key",
        "card_cvc",
    }
    assert kinds("devstack: api GET /x?card=4242%204242%204242%204242 -> - 404 0ms") == {"card_number"}
    assert kinds("devstack: api GET /x?q=%7B%27a%27%3A%2010391513650%7D -> - 404 0ms") == set(), "%20 is a space"


def test_findings_carry_the_line_number_and_kind_and_never_the_secret():
    text = "\n".join(
        [
            "devstack: api GET /health -> - 200 0ms",
            powertools("connection created", secret_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET),
            "devstack: api POST /api/v1/connections -> ConnectionsCreateFunction 201 105ms",
            powertools("card payment", card="4242424242424242"),
        ]
    )
    findings = scan(text, secrets={STRIPE_KEY})
    assert [(f.line, f.kind) for f in findings] == [
        (2, "stripe_secret_key"),
        (2, "webhook_secret"),
        (2, "known_secret"),
        (4, "card_number"),
    ]
    for finding in findings:
        rendered = str(finding)
        assert rendered.startswith(f"line {finding.line}: {finding.kind}: ")
        assert STRIPE_KEY not in rendered and WEBHOOK_SECRET not in rendered and "4242424242424242" not in rendered
    assert "sk_test_***[40 chars]" in findings[0].message and "whsec_***[38 chars]" in findings[0].message
    assert "[16 digits ending 4242]" in findings[3].message
    assert mask(API_KEY) == f"bk_***[{len(API_KEY)} chars]"


def test_allowed_lines_are_exact():
    banner = f"  API key      {DEV_KEY}"
    text = f"{banner}\ndevstack: key {DEV_KEY}\n"
    assert [(f.line, f.kind) for f in scan(text, secrets={DEV_KEY}, allow={banner})] == [
        (2, "api_key"),
        (2, "known_secret"),
    ]
    assert [f.line for f in scan(banner + " ", allow={banner})] == [1]


# -- what is not a secret -----------------------------------------------------------------------------------------

# Lines local stacks printed during the end-to-end tier (template.yaml with the API, fuzzing and Stripe flows, the
# mechanisms template, ``make demo``), verbatim; only the start-up banner lines holding the dev key are left out.
LOCAL_STACK_LOG = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "local-stack.log"


def test_real_local_stack_logs_are_clean():
    text = LOCAL_STACK_LOG.read_text()
    lines = text.splitlines()
    assert len(lines) > 200
    assert sum(line.startswith('{"level":"INFO"') for line in lines) > 15, "Powertools lines at INFO"
    assert sum(" -> " in line for line in lines) > 100, "access log lines"
    assert "Request to Stripe api" in text and "stripe event applied" in text and "Traceback" in text
    findings = scan(text)
    assert findings == [], [str(f) for f in findings]


def test_the_access_log_prints_query_parameter_names_never_values():
    target = loggable_target("/api/v1/customers", "external_id=4242424242424242&email=a%40b.c&limit=10&flag")
    assert target == "/api/v1/customers?external_id=*&email=*&limit=*&flag=*"
    assert loggable_target("/health", "") == "/health" and loggable_target("", "") == "/"


def test_ids_timestamps_amounts_and_request_ids_are_not_secrets():
    now_ms, in_2034_ms, in_2036_us, in_2033_ns = (
        "1764110494127",
        "2035000000004",
        "2100000000000013",
        ("2010000000000000015"),
    )
    for stamp in (now_ms, in_2034_ms, in_2036_us, in_2033_ns):
        assert luhn(stamp) and is_epoch(stamp), "Luhn-valid epoch timestamps: the case the scanner must skip"
    lines = [
        powertools(
            "invoice synced to Stripe",
            invoice_id="inv_01JDQ3ZB8K2M4N6P8R0T2V4X6Y",
            customer_id="cus_AMAjVA8nFVEEt4",
            stripe_invoice="in_1Nv0FGQ9VvD2SbLk",
            amount_due=424242424242,
            total="1234567890123.45",
            ratio=0.4242424242424242,
            created=int(now_ms) // 1000,
            created_ms=int(now_ms),
            scheduled_ms=int(in_2034_ms),
            started_us=int(in_2036_us),
            sent_ns=int(in_2033_ns),
        ),
        powertools("request failed", code="validation_error", status=400, request_id="req_4f3c2b1a0d9e8f7a"),
        powertools(
            "stripe payment applied",
            payment_id="pay_01M8AE6M21MPQ6GJQTJJ2Q4ZKK",
            invoice_number="INV-0000000000001",
            card={"brand": "visa", "last4": "4242", "exp_year": 2030, "cvc_check": "pass", "number": "INV-0001"},
        ),
        powertools(
            "connection created",
            secret_hints={
                "secret_key": "sk_test_…4c2f",
                "publishable_key": "pk_test_51HxAbCdEf",
                "webhook_secret": "whsec_…9a0b",
            },
            key_hint="bk_e2e…cdef",
        ),
        "Invalid API Key provided: sk_test_********************4c2f",
        'devstack: api GET /api/v1/customers -> - 401 0ms {"x-api-key": ""}',
        "devstack: api GET /api/v1/events?start_time=2026-11-25T22:00:00Z -> EventsFunction 200 9ms",
        "devstack: uuid 12345678-1234-1234-1234-123456789012 phone +1 415-555-0100 date 2026-11-25 22:41:34",
        "devstack: api GET /api/v1/invoices/inv_0123456789012345678901 -> InvoicesGetFunction 200 3ms",
    ]
    findings = scan("\n".join(lines))
    assert findings == [], [str(f) for f in findings]


def test_the_scanner_is_not_fooled_by_near_misses_of_cards():
    assert not card_number("4242424242424241"), "fails the Luhn check"
    assert not card_number("1234567890123452") and luhn("1234567890123452"), "no card begins with 1"
    assert not card_number("0000000000000000") and not card_number("4444444444444444 4444")
    assert not card_number("4242 4242-4242 4242"), "one kind of separator"
    assert not card_number("2026-11-25 4242424"), "groups of 3 to 6 digits"
