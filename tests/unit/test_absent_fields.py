"""Success bodies leave out fields without a value, as Flexprice does; error envelopes keep all four fields."""

from __future__ import annotations

import json

from billing.errors import NotFound
from billing.http import api, omit_absent
from devstack.events import LambdaContext


def test_none_fields_are_left_out_at_every_depth_but_a_tiers_up_to_and_an_events_properties():
    body = {
        "id": "price_1",
        "description": None,
        "tiers": [{"up_to": 10, "unit_amount": "1", "flat_amount": None}, {"up_to": None, "unit_amount": "0.5"}],
        "meter": {"aggregation": {"type": "COUNT", "field": None}},
        "properties": {"region": None},
        "items": [None, {"a": None}],
        "metadata": {},
    }
    assert omit_absent(body) == {
        "id": "price_1",
        "tiers": [{"up_to": 10, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}],
        "meter": {"aggregation": {"type": "COUNT"}},
        "properties": {"region": None},
        "items": [None, {}],
        "metadata": {},
    }


def _event() -> dict:
    return {"requestContext": {"http": {"method": "GET"}}, "rawPath": "/x"}


def test_the_handler_wrapper_omits_absent_fields_unless_told_to_keep_nulls():
    def resource(_req):
        return {"id": "x", "email": None, "rate": None}

    plain = api(authenticated=False)(resource)(_event(), LambdaContext("test"))
    kept = api(authenticated=False, nulls=True)(resource)(_event(), LambdaContext("test"))
    assert json.loads(plain["body"]) == {"id": "x"}
    assert json.loads(kept["body"]) == {"id": "x", "email": None, "rate": None}


def test_an_error_keeps_all_four_envelope_fields():
    def missing(_req):
        raise NotFound("customer cus_1 was not found")

    out = api(authenticated=False)(missing)(_event(), LambdaContext("test"))
    assert out["statusCode"] == 404
    assert json.loads(out["body"]) == {
        "code": "not_found",
        "message": "customer cus_1 was not found",
        "http_status_code": 404,
        "details": {},
    }
