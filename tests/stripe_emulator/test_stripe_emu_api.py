"""Every endpoint through the official SDK over HTTP: shapes, parameters, errors, lists, search, expansion."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest
import stripe

from stripe_emulator import StripeEmulator


def test_authentication_is_required_and_checked(emulator: StripeEmulator) -> None:
    with pytest.raises(stripe.AuthenticationError) as bad:
        stripe.StripeClient("pk_test_nope", base_addresses={"api": emulator.url}).v1.customers.list()
    assert bad.value.http_status == 401
    assert bad.value.error.type == "invalid_request_error"
    request = urllib.request.Request(f"{emulator.url}/v1/customers")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request)
    assert missing.value.code == 401
    assert "did not provide an API key" in json.loads(missing.value.read())["error"]["message"]


def test_stripe_version_is_echoed(emulator: StripeEmulator, api_key: str) -> None:
    request = urllib.request.Request(
        f"{emulator.url}/v1/customers", headers={"Authorization": f"Bearer {api_key}", "Stripe-Version": "2020-08-27"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Stripe-Version"] == "2020-08-27"
        assert response.headers["Request-Id"].startswith("req_")
        body = json.loads(response.read())
    assert body == {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}


def test_customers_create_retrieve_update_list_search(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"our_customer_id": "cust_01", "tier": "gold"}}
    )
    assert created.id.startswith("cus_") and created.object == "customer"
    assert created.invoice_settings.default_payment_method is None
    fetched = client.v1.customers.retrieve(created.id)
    assert fetched.email == "ada@example.com" and fetched.metadata["our_customer_id"] == "cust_01"

    updated = client.v1.customers.update(created.id, params={"name": "Ada L.", "metadata": {"tier": ""}})
    assert updated.name == "Ada L."
    assert updated.metadata.to_dict() == {"our_customer_id": "cust_01"}  # empty string removes a key

    other = client.v1.customers.create(params={"email": "bob@example.com", "metadata": {"our_customer_id": "cust_02"}})
    found = client.v1.customers.search(params={"query": "metadata['our_customer_id']:'cust_02'"})
    assert [c.id for c in found.data] == [other.id]
    assert found.object == "search_result" and found.has_more is False
    both = client.v1.customers.search(params={"query": "email:'ada@example.com' OR email:'bob@example.com'"})
    assert {c.id for c in both.data} == {created.id, other.id}
    none = client.v1.customers.search(params={"query": "metadata['our_customer_id']:'nobody'"})
    assert none.data == []

    by_email = client.v1.customers.list(params={"email": "bob@example.com"})
    assert [c.id for c in by_email.data] == [other.id]


def test_list_pagination_newest_first(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    newest_first = list(reversed(ids))
    page1 = client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in page1.data] == newest_first[:2] and page1.has_more
    page2 = client.v1.customers.list(params={"limit": 2, "starting_after": page1.data[-1].id})
    assert [c.id for c in page2.data] == newest_first[2:4] and page2.has_more
    page3 = client.v1.customers.list(params={"limit": 2, "starting_after": page2.data[-1].id})
    assert [c.id for c in page3.data] == newest_first[4:] and not page3.has_more
    back = client.v1.customers.list(params={"limit": 2, "ending_before": page3.data[0].id})
    assert [c.id for c in back.data] == newest_first[2:4]
    everything = [c.id for c in client.v1.customers.list(params={"limit": 2}).auto_paging_iter()]
    assert everything == newest_first
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list(params={"limit": 101})
    assert err.value.param == "limit"


def test_errors_follow_stripe(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_missing")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(params={"colour": "blue"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.http_status == 400 and unknown.value.code == "parameter_unknown"
    assert unknown.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as required:
        client.v1.invoice_items.create(params={"customer": "cus_x", "amount": 1})  # customer checked first
    assert required.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as bad_int:
        client.raw_request("post", "/v1/customers", balance="ten")
    assert bad_int.value.code == "parameter_invalid_integer"


def test_products_and_prices(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "API calls", "metadata": {"feature": "feat_1"}})
    assert product.active and product.name == "API calls"
    assert client.v1.products.update(product.id, params={"description": "metered"}).description == "metered"
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount_decimal": "0.25", "nickname": "per call"}
    )
    assert price.unit_amount is None and price.unit_amount_decimal == Decimal("0.25") and price.type == "one_time"
    recurring = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 1000, "recurring": {"interval": "month"}}
    )
    assert recurring.type == "recurring" and recurring.recurring.interval == "month"
    assert {p.id for p in client.v1.prices.list(params={"product": product.id}).data} == {price.id, recurring.id}
    assert client.v1.products.retrieve(product.id).id == product.id
    assert [p.id for p in client.v1.products.list().data] == [product.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.delete(product.id)  # it has prices
    other = client.v1.products.create(params={"name": "Seats"})
    assert client.v1.products.delete(other.id).deleted is True


def test_payment_methods_attach_list_detach_and_default(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Card holder"})
    raw = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    assert raw.card.last4 == "4242" and raw.card.brand == "visa" and raw.customer is None
    attached = client.v1.payment_methods.attach(raw.id, params={"customer": customer.id})
    assert attached.customer == customer.id
    token = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    assert token.id.startswith("pm_") and token.card.brand == "mastercard"

    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert {pm.id for pm in listed.data} == {raw.id, token.id}
    via_customer = client.v1.customers.payment_methods.list(customer.id, params={"type": "card"})
    assert {pm.id for pm in via_customer.data} == {raw.id, token.id}

    updated = client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": token.id}})
    assert updated.invoice_settings.default_payment_method == token.id
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": ["invoice_settings.default_payment_method"]})
    assert expanded.invoice_settings.default_payment_method.card.last4 == "4444"

    detached = client.v1.payment_methods.detach(token.id)
    assert detached.customer is None
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None

    stranger = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    with pytest.raises(stripe.InvalidRequestError) as not_attached:
        client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": stranger.id}})
    assert not_attached.value.param == "invoice_settings[default_payment_method]"
    with pytest.raises(stripe.CardError) as bad_number:
        client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424241", "exp_month": 1, "exp_year": 2030}}
        )
    assert bad_number.value.code == "incorrect_number"


def test_setup_intents(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    intent = client.v1.setup_intents.create(params={"customer": customer.id, "usage": "off_session"})
    assert intent.status == "requires_payment_method" and intent.client_secret.startswith(intent.id)
    confirmed = client.v1.setup_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded"
    pm = client.v1.payment_methods.retrieve(confirmed.payment_method)
    assert pm.customer == customer.id
    assert client.v1.setup_intents.retrieve(intent.id).status == "succeeded"
    assert [s.id for s in client.v1.setup_intents.list(params={"customer": customer.id}).data] == [intent.id]


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("pm_card_visa", "succeeded", None),
        ("pm_card_chargeDeclined", "requires_payment_method", "card_declined"),
        ("pm_card_authenticationRequired", "requires_payment_method", "authentication_required"),
    ],
)
def test_payment_intent_off_session_with_the_three_cards(
    client: stripe.StripeClient, token: str, status: str, code: str | None
) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach(token, params={"customer": customer.id})
    intent = client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "usd", "customer": customer.id, "payment_method": pm.id}
    )
    assert intent.status == "requires_confirmation"
    if code is None:
        done = client.v1.payment_intents.confirm(intent.id, params={"off_session": True})
        assert done.status == "succeeded" and done.amount_received == 2500
        assert done.charges.data[0].paid is True
    else:
        with pytest.raises(stripe.CardError) as err:
            client.v1.payment_intents.confirm(intent.id, params={"off_session": True})
        assert err.value.http_status == 402 and err.value.code == code
        assert err.value.error.payment_intent["id"] == intent.id
    after = client.v1.payment_intents.retrieve(intent.id)
    assert after.status == status
    if code:
        assert after.last_payment_error.code == code
    assert [p.id for p in client.v1.payment_intents.list(params={"customer": customer.id}).data] == [intent.id]


def test_authentication_card_on_session_requires_action(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "eur", "payment_method": "pm_card_authenticationRequired", "confirm": True}
    )
    assert intent.status == "requires_action" and intent.next_action.type == "use_stripe_sdk"


def test_checkout_setup_mode_completed_with_a_test_card(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    customer = client.v1.customers.create(params={"email": "saver@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer.id,
            "payment_method_types": ["card"],
            "success_url": "https://example.com/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://example.com/cancel",
            "setup_intent_data": {"metadata": {"set_default": "true"}},
            "metadata": {"our_customer_id": "cust_9"},
        }
    )
    assert session.status == "open" and session.url.startswith(emulator.url + "/checkout/cs_test_")
    with urllib.request.urlopen(session.url) as page:
        assert b"Save a card" in page.read()

    emulator.complete_checkout_session(session.id, card="4000002500003155")
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["setup_intent.payment_method"]})
    assert done.status == "complete" and done.payment_status == "no_payment_required"
    assert done.setup_intent.status == "succeeded" and done.setup_intent.metadata["set_default"] == "true"
    assert done.setup_intent.payment_method.card.last4 == "3155"
    assert done.setup_intent.payment_method.customer == customer.id
    types = [e.type for e in client.v1.events.list(params={"limit": 20}).data]
    assert types[0] == "checkout.session.completed"
    assert {"setup_intent.succeeded", "payment_method.attached", "setup_intent.created"} <= set(types)


def test_checkout_payment_mode_through_the_hosted_page(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    customer = client.v1.customers.create()
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "success_url": "https://example.com/paid/{CHECKOUT_SESSION_ID}",
            "cancel_url": "https://example.com/cancel",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 1999, "product_data": {"name": "Top-up"}},
                    "quantity": 2,
                }
            ],
            "payment_intent_data": {"setup_future_usage": "off_session", "metadata": {"payment_id": "pay_1"}},
        }
    )
    assert session.amount_total == 3998 and session.payment_status == "unpaid"
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.quantity, i.amount_total) for i in items.data] == [(2, 3998)]

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    declined = urllib.request.Request(session.url, data=b"card=4000000000000002", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(declined)
    assert err.value.code == 402 and b"declined" in err.value.read()
    ok = urllib.request.Request(session.url, data=b"card=4242424242424242", method="POST")
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(ok)
    assert redirect.value.code == 303
    assert redirect.value.headers["Location"] == f"https://example.com/paid/{session.id}"

    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert done.status == "complete" and done.payment_status == "paid"
    assert done.payment_intent.status == "succeeded" and done.payment_intent.metadata["payment_id"] == "pay_1"
    saved = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [pm.id for pm in saved.data] == [done.payment_intent.payment_method]


def test_checkout_expire(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "success_url": "https://e.com/s",
            "cancel_url": "https://e.com/c",
            "payment_method_types": ["card"],
        }
    )
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert [e.type for e in client.v1.events.list(params={"type": "checkout.session.expired"}).data] == [
        "checkout.session.expired"
    ]


def test_events_list_filters_and_retrieve(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    before = int(emulator.clock.now())
    customer = client.v1.customers.create()
    client.v1.customers.update(customer.id, params={"name": "Renamed"})
    emulator.advance_clock(120)
    later = client.v1.customers.create()
    events = client.v1.events.list(params={"type": "customer.created"})
    assert [e.data.object.id for e in events.data] == [later.id, customer.id]
    recent = client.v1.events.list(params={"created": {"gte": before + 60}})
    assert [e.data.object.id for e in recent.data] == [later.id]
    wildcard = client.v1.events.list(params={"type": "customer.*"})
    assert [e.type for e in wildcard.data] == ["customer.created", "customer.updated", "customer.created"]
    updated = client.v1.events.list(params={"type": "customer.updated"}).data[0]
    assert updated.data.previous_attributes["name"] is None
    assert client.v1.events.retrieve(updated.id).type == "customer.updated"


def test_webhook_endpoints(client: stripe.StripeClient) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["invoice.paid", "checkout.session.completed"]}
    )
    assert endpoint.secret.startswith("whsec_") and endpoint.status == "enabled"
    fetched = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert "secret" not in fetched.to_dict()  # only returned at creation, as on Stripe
    disabled = client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    assert disabled.status == "disabled"
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
    assert client.v1.webhook_endpoints.delete(endpoint.id).deleted is True
    assert client.v1.webhook_endpoints.list().data == []


def test_accounts_are_isolated_by_key(emulator: StripeEmulator) -> None:
    one = stripe.StripeClient("sk_test_isolated_one", base_addresses={"api": emulator.url})
    two = stripe.StripeClient("sk_test_isolated_two", base_addresses={"api": emulator.url})
    customer = one.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError):
        two.v1.customers.retrieve(customer.id)
