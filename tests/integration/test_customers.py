"""Customers through their functions, against the embedded DynamoDB."""

from __future__ import annotations

from tests.support.api import call


def create(tenant, **fields):
    body = {"external_id": "acme-1", "name": "Acme", **fields}
    return call("POST", "/api/v1/customers", tenant=tenant, body=body)


def test_create_returns_201_with_flexprice_fields(tenant):
    res = create(tenant, email="billing@acme.test", metadata={"tier": "gold"})
    assert res.status == 201, res.text
    body = res.body
    assert body["id"].startswith("cust_") and len(body["id"]) == 31
    assert body["external_id"] == "acme-1"
    assert body["status"] == "published"
    assert body["metadata"] == {"tier": "gold"}
    assert body["tenant_id"] == tenant[0] and body["environment_id"] == tenant[1]
    assert body["created_at"].endswith("Z")
    assert res.headers["Content-Type"] == "application/json"


def test_duplicate_external_id_is_409_already_exists(tenant):
    assert create(tenant).status == 201
    res = create(tenant, name="Other")
    assert res.status == 409
    assert res.body["code"] == "already_exists"
    assert res.body["http_status_code"] == 409
    listed = call("GET", "/api/v1/customers", tenant=tenant)
    assert listed.body["pagination"]["total"] == 1


def test_get_by_id_and_external_id(tenant):
    created = create(tenant).body
    assert call("GET", f"/api/v1/customers/{created['id']}", tenant=tenant).body == created
    assert call("GET", "/api/v1/customers/external/acme-1", tenant=tenant).body == created


def test_update_by_path_and_query_and_external_id_change(tenant):
    created = create(tenant).body
    res = call("PUT", f"/api/v1/customers/{created['id']}", tenant=tenant, body={"name": "Acme Inc"})
    assert res.status == 200 and res.body["name"] == "Acme Inc"
    res = call("PUT", "/api/v1/customers", tenant=tenant, query={"id": created["id"]}, body={"external_id": "acme-2"})
    assert res.status == 200 and res.body["external_id"] == "acme-2"
    assert call("GET", "/api/v1/customers/external/acme-1", tenant=tenant).status == 404
    assert call("GET", "/api/v1/customers/external/acme-2", tenant=tenant).body["id"] == created["id"]
    # the old external id is free again
    assert create(tenant).status == 201


def test_update_to_taken_external_id_is_409_and_changes_nothing(tenant):
    first = create(tenant).body
    create(tenant, external_id="acme-2")
    res = call("PUT", f"/api/v1/customers/{first['id']}", tenant=tenant, body={"external_id": "acme-2", "name": "X"})
    assert res.status == 409 and res.body["code"] == "already_exists"
    assert call("GET", f"/api/v1/customers/{first['id']}", tenant=tenant).body["name"] == "Acme"


def test_delete_archives_and_frees_external_id(tenant):
    created = create(tenant).body
    res = call("DELETE", f"/api/v1/customers/{created['id']}", tenant=tenant)
    assert res.status == 204 and res.text == ""
    got = call("GET", f"/api/v1/customers/{created['id']}", tenant=tenant).body
    assert got["status"] == "archived"
    assert call("GET", "/api/v1/customers", tenant=tenant).body["pagination"]["total"] == 0
    archived = call("GET", "/api/v1/customers", tenant=tenant, query={"status": "archived"}).body
    assert [c["id"] for c in archived["items"]] == [created["id"]]
    assert create(tenant).status == 201


def test_list_pagination_and_filters(tenant):
    ids = [create(tenant, external_id=f"c{i}", email=f"c{i}@x.test").body["id"] for i in range(5)]
    res = call("GET", "/api/v1/customers", tenant=tenant, query={"limit": 2, "offset": 1}).body
    assert res["pagination"] == {"total": 5, "limit": 2, "offset": 1}
    assert [c["id"] for c in res["items"]] == [ids[3], ids[2]]
    res = call("POST", "/api/v1/customers/search", tenant=tenant, body={"external_ids": ["c1", "c3"], "order": "asc"})
    assert [c["id"] for c in res.body["items"]] == [ids[1], ids[3]]
    res = call("GET", "/api/v1/customers", tenant=tenant, query={"email": "C4@x.test"}).body
    assert [c["id"] for c in res["items"]] == [ids[4]]


def test_bad_input_gets_400_and_writes_nothing(tenant):
    cases = [
        (None, b"{not json"),
        (None, b"[1,2]"),
        ({"name": "no external id"}, None),
        ({"external_id": "x", "name": "y", "email": "not-an-email"}, None),
        ({"external_id": "x", "name": "y", "timezone": "Mars/Base"}, None),
        ({"external_id": "x", "name": "y", "metadata": {"a": {"nested": 1}}}, None),
        ({"external_id": 5, "name": "y"}, None),
    ]
    for body, raw in cases:
        res = call("POST", "/api/v1/customers", tenant=tenant, body=body, raw_body=raw)
        assert res.status == 400, (body, raw, res.text)
        assert res.body["code"] == "validation_error"
        assert res.body["message"]
    assert call("GET", "/api/v1/customers", tenant=tenant).body["pagination"]["total"] == 0


def test_bad_list_query_is_400(tenant):
    for query in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "weird"}, {"limit": "x"}):
        res = call("GET", "/api/v1/customers", tenant=tenant, query=query)
        assert res.status == 400, query


def test_missing_or_unknown_key_is_401_envelope(tenant):
    res = call("GET", "/api/v1/customers", tenant=None)
    assert res.status == 401
    assert res.body["code"] == "unauthorized" and res.body["http_status_code"] == 401


def test_other_tenant_sees_404_and_cannot_change(tenant, other_tenant):
    created = create(tenant).body
    cid = created["id"]
    assert call("GET", f"/api/v1/customers/{cid}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/customers/external/acme-1", tenant=other_tenant).status == 404
    assert call("PUT", f"/api/v1/customers/{cid}", tenant=other_tenant, body={"name": "pwn"}).status == 404
    assert call("DELETE", f"/api/v1/customers/{cid}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/customers", tenant=other_tenant).body["pagination"]["total"] == 0
    # the same external id is free in another environment
    assert create(other_tenant).status == 201
    assert call("GET", f"/api/v1/customers/{cid}", tenant=tenant).body["name"] == "Acme"
