"""Lists in O(page): totals from the counts kept in the writing transactions, cursors, selective filters.

Given customers created, archived and re-keyed through the API, when they are listed and searched, then the totals
equal what is stored, a cursor walks every item once in order, and a cursor given with another filter is a 400.
"""

from __future__ import annotations

from billing import wiring
from billing.scope import Scope
from billing.store import tracking
from tests.support.api import call, pagination


def create(tenant, **body) -> dict:
    res = call("POST", "/api/v1/customers", tenant=tenant, body={"name": "N", **body})
    assert res.status == 201, res.text
    return dict(res.body)


def test_totals_cursor_and_selective_filters(tenant):
    made = [create(tenant, external_id=f"c{i}", email=f"C{i % 3}@x.test") for i in range(7)]
    assert call("DELETE", f"/api/v1/customers/{made[1]['id']}", tenant=tenant).status == 204
    first = call("GET", "/api/v1/customers", tenant=tenant, query={"limit": 2}).body
    assert pagination(first) == {"total": 6, "limit": 2, "offset": 0}
    seen = [c["id"] for c in first["items"]]
    cursor = first["pagination"]["next_cursor"]
    while cursor:
        page = call("GET", "/api/v1/customers", tenant=tenant, query={"limit": 2, "cursor": cursor}).body
        assert page["pagination"]["total"] == 6
        seen += [c["id"] for c in page["items"]]
        cursor = page["pagination"].get("next_cursor")
    assert seen == [c["id"] for c in reversed(made) if c["id"] != made[1]["id"]]
    # The same walk oldest first, through the search body.
    body = {"limit": 4, "order": "asc"}
    page = call("POST", "/api/v1/customers/search", tenant=tenant, body=body).body
    rest = call(
        "POST", "/api/v1/customers/search", tenant=tenant, body={**body, "cursor": page["pagination"]["next_cursor"]}
    ).body
    assert [c["id"] for c in page["items"] + rest["items"]] == [c["id"] for c in made if c["id"] != made[1]["id"]]
    assert "next_cursor" not in rest["pagination"]
    # A cursor is tied to its filter.
    refused = call(
        "GET",
        "/api/v1/customers",
        tenant=tenant,
        query={"limit": 2, "cursor": cursor or first["pagination"]["next_cursor"], "email": "c0@x.test"},
    )
    assert refused.status == 400 and refused.body["details"]["errors"][0]["field"] == "cursor"
    assert call("GET", "/api/v1/customers", tenant=tenant, query={"cursor": "nonsense"}).status == 400
    # Archived ones: counted apart, found by their (released) external id through its index.
    archived = call("GET", "/api/v1/customers", tenant=tenant, query={"status": "archived"}).body
    assert pagination(archived)["total"] == 1 and archived["items"][0]["id"] == made[1]["id"]
    gone = call("POST", "/api/v1/customers/search", tenant=tenant, body={"external_ids": ["c1"], "status": "archived"})
    assert [c["id"] for c in gone.body["items"]] == [made[1]["id"]]
    # Email (any case), several external ids.
    by_mail = call("POST", "/api/v1/customers/search", tenant=tenant, body={"email": "c0@X.test"}).body
    assert sorted(c["id"] for c in by_mail["items"]) == sorted(made[i]["id"] for i in (0, 3, 6))
    assert by_mail["pagination"]["total"] == 3
    several = call("POST", "/api/v1/customers/search", tenant=tenant, body={"external_ids": ["c2", "c5", "c1"]}).body
    assert [c["id"] for c in several["items"]] == [made[5]["id"], made[2]["id"]]
    # A changed email moves the customer in the email index; the counts do not move.
    res = call("PUT", f"/api/v1/customers/{made[0]['id']}", tenant=tenant, body={"email": "new@x.test"})
    assert res.status == 200, res.text
    assert [
        c["id"]
        for c in call("POST", "/api/v1/customers/search", tenant=tenant, body={"email": "new@x.test"}).body["items"]
    ] == [made[0]["id"]]
    assert tracking.counts(wiring.entities(), Scope(*tenant), "customer") == {"published": 6, "archived": 1}
