"""The entity repositories of the catalog and customers, on the entities table."""

from __future__ import annotations

from billing import wiring
from billing.store.entities import Entities


def features() -> Entities:
    return Entities(wiring.entities(), "feature", "feature")


def meters() -> Entities:
    return Entities(wiring.entities(), "meter", "meter")


def plans() -> Entities:
    return Entities(wiring.entities(), "plan", "plan")


def prices() -> Entities:
    return Entities(wiring.entities(), "price", "price")


def customers() -> Entities:
    return Entities(wiring.entities(), "customer", "customer")
