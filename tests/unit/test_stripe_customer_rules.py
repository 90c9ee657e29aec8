"""Rules of the customer sync, against an in-memory fake of this environment's Stripe (``stripe_edge.Stripe``).

The fake keeps what these rules depend on and the emulator cannot show: Stripe's search lags behind writes (up to a
minute), idempotency keys live 24 hours and refuse other parameters, and an answer can be lost after Stripe acted.
"""

from __future__ import annotations

import copy
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
import stripe

from billing import stripe_edge
from billing.errors import ValidationFailed
from billing.scope import Scope
from billing.services import customers, stripe_sync

SCOPE = Scope("tenant_unit", "env_unit")
DAY = 86400.0
SEARCH_LAG = 60.0


class _Obj(dict):  # type: ignore[type-arg]
    """A Stripe object as the SDK hands it out: attribute access and ``to_dict``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))


class FakeCustomers:
    def __init__(self, world: FakeStripe) -> None:
        self.w = world

    def search(self, params: dict[str, Any]) -> Any:
        ours = params["query"].split("'")[3]
        visible = [
            c
            for c in self.w.customers.values()
            if not c.get("deleted")
            and c["metadata"].get("flexprice_customer_id") == ours
            and self.w.now - c["_at"] >= SEARCH_LAG
        ]
        return SimpleNamespace(data=[_Obj(_public(c)) for c in visible])

    def create(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        def act() -> dict[str, Any]:
            cid = f"cus_{next(self.w.ids)}"
            self.w.customers[cid] = {"id": cid, "name": None, "email": None, "address": None, "_at": self.w.now}
            self.w.customers[cid]["metadata"] = dict(params.get("metadata") or {})
            return self.w.customers[cid]

        return self.w.idempotent("POST /v1/customers", params, options, act)

    def retrieve(self, cid: str) -> Any:
        found = self.w.customers.get(cid)
        if found is None:
            raise stripe.InvalidRequestError(f"No such customer: '{cid}'", "id", code="resource_missing")
        return _Obj(_public(found))

    def update(self, cid: str, params: dict[str, Any], options: dict[str, Any]) -> Any:
        def act() -> dict[str, Any]:
            self.w.updates += 1
            found = self.w.customers[cid]
            for key in ("name", "email"):
                if key in params:
                    found[key] = params[key] or None
            if "address" in params:
                found["address"] = {k: v or None for k, v in params["address"].items()}
            found["metadata"] = {**found["metadata"], **params.get("metadata", {})}
            return found

        return self.w.idempotent(f"POST /v1/customers/{cid}", params, options, act)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


class FakeStripe:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.customers: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, tuple[str, dict[str, Any], dict[str, Any], float]] = {}
        self.ids = itertools.count(1)
        self.lose_answers = 0
        self.updates = 0
        self.client = SimpleNamespace(v1=SimpleNamespace(customers=FakeCustomers(self)))

    def idempotent(self, route: str, params: dict[str, Any], options: dict[str, Any], act: Any) -> Any:
        key = options["idempotency_key"]
        kept = self.keys.get(key)
        if kept is not None and self.now - kept[3] < DAY:
            if (kept[0], kept[1]) != (route, params):
                raise stripe.IdempotencyError(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with."
                )
            answer = kept[2]
        else:
            answer = _public(act())
            self.keys[key] = (route, copy.deepcopy(params), answer, self.now)
        if self.lose_answers:
            self.lose_answers -= 1
            raise stripe.APIConnectionError("the answer was lost")
        return _Obj(copy.deepcopy(answer))


class Memory:
    """Our side: customers, mappings and unlink counts in memory."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.links: dict[str, str] = {}
        self.unlinked: dict[str, int] = {}

    def find_mapping(self, scope: Scope, entity_type: str, entity_id: str, provider: str) -> dict[str, Any] | None:
        found = self.links.get(entity_id)
        return {"id": f"eim_{entity_id}", "entity_id": entity_id, "provider_entity_id": found} if found else None

    def link(self, scope: Scope, entity_type: str, entity_id: str, provider: str, pid: str, *a: Any, **k: Any) -> Any:
        self.links.setdefault(entity_id, pid)
        return self.find_mapping(scope, entity_type, entity_id, provider)

    def find_by_provider_id(self, scope: Scope, provider: str, entity_type: str, pid: str) -> dict[str, Any] | None:
        ours = next((e for e, p in self.links.items() if p == pid), None)
        return self.find_mapping(scope, entity_type, ours, provider) if ours else None

    def unlink(self, scope: Scope, mapping: dict[str, Any], reason: str, actor: str = "system") -> bool:
        self.links.pop(mapping["entity_id"], None)
        self.unlinked[mapping["entity_id"]] = self.unlinked.get(mapping["entity_id"], 0) + 1
        return True

    def unlinks(self, scope: Scope, entity_type: str, entity_id: str, provider: str) -> int:
        return self.unlinked.get(entity_id, 0)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeStripe, Memory]:
    fake, memory = FakeStripe(), Memory()
    edge = stripe_edge.Stripe(SCOPE, {"id": "conn_1", "sync_config": {"customer": {"outbound": True}}}, fake.client)
    monkeypatch.setattr(stripe_edge, "connect", lambda scope: edge)
    monkeypatch.setattr(stripe_sync.mappings, "find", memory.find_mapping)
    monkeypatch.setattr(stripe_sync.mappings, "link", memory.link)
    monkeypatch.setattr(stripe_sync.mappings, "find_by_provider_id", memory.find_by_provider_id)
    monkeypatch.setattr(stripe_sync.mappings, "unlink", memory.unlink)
    monkeypatch.setattr(stripe_sync.mappings, "unlinks", memory.unlinks)
    repo = SimpleNamespace(find=lambda scope, cid: copy.deepcopy(memory.customers.get(cid)))
    monkeypatch.setattr(stripe_sync.catalog, "customers", lambda: repo)
    return fake, memory


def ours(memory: Memory, name: str, **fields: Any) -> dict[str, Any]:
    record = {"id": "cust_1", "external_id": "acme", "name": name, "status": "published", "version": 1, **fields}
    memory.customers["cust_1"] = record
    return record


def rename(memory: Memory, name: str) -> None:
    record = memory.customers["cust_1"]
    record.update(name=name, version=int(record["version"]) + 1)


def test_the_fake_refuses_a_key_reused_with_other_parameters(world: tuple[FakeStripe, Memory]) -> None:
    """What a create carrying the customer's name under a key of our id alone meets when retried after a rename."""
    fake, _ = world
    customers_api = fake.client.v1.customers
    customers_api.create({"name": "Before"}, {"idempotency_key": "billing:customer.create:cust_1"})
    with pytest.raises(stripe.IdempotencyError):
        customers_api.create({"name": "After"}, {"idempotency_key": "billing:customer.create:cust_1"})


def test_a_create_retried_after_a_rename_inside_the_search_lag_makes_one_customer(
    world: tuple[FakeStripe, Memory],
) -> None:
    fake, memory = world
    ours(memory, "Before", email="a@acme.test")
    fake.lose_answers = 1  # Stripe created the customer; its answer never arrived
    with pytest.raises(stripe.APIConnectionError):
        stripe_sync.sync_customer(SCOPE, "cust_1")
    rename(memory, "After")
    fake.now += 10  # Stripe's search does not show the new customer yet
    mapping = stripe_sync.sync_customer(SCOPE, "cust_1")
    assert mapping is not None
    [only] = fake.customers.values()
    assert mapping["provider_entity_id"] == only["id"]
    assert (only["name"], only["email"]) == ("After", "a@acme.test")


def test_a_sync_resumed_a_day_later_finds_the_customer_it_created(world: tuple[FakeStripe, Memory]) -> None:
    fake, memory = world
    ours(memory, "Before")
    fake.lose_answers = 1
    with pytest.raises(stripe.APIConnectionError):
        stripe_sync.sync_customer(SCOPE, "cust_1")
    rename(memory, "After")
    fake.now += DAY + 3600  # the create's key is forgotten; the search shows the customer
    stripe_sync.sync_customer(SCOPE, "cust_1")
    [only] = fake.customers.values()
    assert only["name"] == "After" and memory.links["cust_1"] == only["id"]


def test_a_refresh_with_nothing_new_sends_nothing(world: tuple[FakeStripe, Memory]) -> None:
    fake, memory = world
    ours(memory, "Acme", email="a@acme.test", address_city="Porto")
    stripe_sync.sync_customer(SCOPE, "cust_1")
    sent = fake.updates
    for _ in range(3):
        stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True)
    assert fake.updates == sent
    rename(memory, "Acme Ltd")
    stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True)
    assert fake.updates == sent + 1


def test_the_same_update_made_twice_is_sent_twice(world: tuple[FakeStripe, Memory]) -> None:
    """A → B → A → B within a day: each change reaches Stripe (a key naming only the parameters would replay)."""
    fake, memory = world
    ours(memory, "A")
    stripe_sync.sync_customer(SCOPE, "cust_1")
    for name in ("B", "A", "B"):
        rename(memory, name)
        stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True)
        [only] = fake.customers.values()
        assert only["name"] == name


def test_a_customer_deleted_at_stripe_is_replaced_not_replayed(world: tuple[FakeStripe, Memory]) -> None:
    fake, memory = world
    ours(memory, "Acme")
    first = stripe_sync.sync_customer(SCOPE, "cust_1")
    assert first is not None
    fake.customers[first["provider_entity_id"]]["deleted"] = True
    again = stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True)
    assert again is not None and again["provider_entity_id"] != first["provider_entity_id"]
    assert not fake.customers[again["provider_entity_id"]].get("deleted")


def test_an_archived_customer_is_flagged_and_never_created(world: tuple[FakeStripe, Memory]) -> None:
    fake, memory = world
    ours(memory, "Acme", status="archived")
    assert stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True) is None
    assert fake.customers == {}
    ours(memory, "Acme")
    stripe_sync.sync_customer(SCOPE, "cust_1")
    memory.customers["cust_1"].update(status="archived", version=2)
    stripe_sync.sync_customer(SCOPE, "cust_1", refresh=True)
    [only] = fake.customers.values()
    assert only["metadata"]["flexprice_archived"] == "true" and not only.get("deleted")


# ---------------------------------------------------------------------------------------------- pure rules


def test_changes_name_only_what_differs() -> None:
    want = {
        "name": "Acme",
        "email": "a@acme.test",
        "address": {"city": "Porto", "country": "PT"},
        "metadata": {"flexprice_customer_id": "cust_1", "flexprice_external_id": "acme"},
    }
    theirs = {
        "name": "Acme",
        "email": "a@acme.test",
        "address": {"city": "Porto", "country": "PT", "line1": None, "line2": None, "postal_code": None, "state": None},
        "metadata": {"flexprice_customer_id": "cust_1", "flexprice_external_id": "acme", "theirs": "kept"},
    }
    assert stripe_sync.changes(want, theirs) == {}
    moved = stripe_sync.changes({**want, "address": {"city": "Lisbon", "country": "PT"}}, theirs)
    assert moved == {
        "address": {"line1": "", "line2": "", "city": "Lisbon", "state": "", "postal_code": "", "country": "PT"}
    }
    relabelled = stripe_sync.changes({**want, "metadata": {**want["metadata"], "flexprice_external_id": "b"}}, theirs)
    assert relabelled == {"metadata": {"flexprice_external_id": "b"}}


def test_fields_we_have_no_value_for_are_left_alone_at_stripe() -> None:
    want = stripe_sync.desired(SCOPE, {"id": "cust_1", "external_id": "x", "status": "published"})
    assert "name" not in want and "email" not in want and "address" not in want
    assert stripe_sync.changes(want, {"name": "Set in the dashboard", "metadata": want["metadata"]}) == {}


def test_stripe_changes_copy_only_stripes_values_that_differ() -> None:
    current = {"name": "Acme", "email": "a@acme.test", "address_city": "Porto"}
    theirs = {"name": "Acme", "email": None, "address": {"city": "Lisbon", "line1": "1 Rua"}}
    assert customers.stripe_changes(current, theirs) == {"address_city": "Lisbon", "address_line1": "1 Rua"}


@pytest.mark.parametrize(
    ("theirs", "field"),
    [
        ({"k" * 41: "v"}, "metadata." + "k" * 41),
        ({"note": "x" * 501}, "metadata.note"),
        ({f"k{n}": "v" for n in range(47)}, "metadata"),
        ({"flexprice_customer_id": "other"}, "metadata"),
    ],
)
def test_metadata_is_checked_against_stripes_limits_counting_ours(theirs: dict[str, str], field: str) -> None:
    ours_ = {"flexprice_customer_id": "c", "flexprice_environment_id": "e", "flexprice_a": "1", "flexprice_b": "2"}
    with pytest.raises(ValidationFailed) as refused:
        stripe_edge.metadata(theirs, ours_)
    assert refused.value.details["field"] == field


def test_metadata_at_the_limits_passes() -> None:
    ours_ = {"flexprice_customer_id": "c"}
    theirs = {f"{n:02d}" + "k" * 38: "v" * 500 for n in range(49)}
    assert len(stripe_edge.metadata(theirs, ours_)) == 50
