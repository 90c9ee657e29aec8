"""An invoice record's discounts, credits and taxes: stored inputs in, Flexprice's fields out (``domain.adjustments``).

A draft invoice carries ``adjustment_inputs``: snapshots of the coupons (``discounts``) and tax rates (``taxes``) that
apply to it, taken when the draft was computed, so a coupon or a rate edited later never changes an invoice already
drafted. Prepaid credits are passed in at finalize (``credits``: the sources spent in the finalize transaction).
``apply`` recomputes every derived field from the lines and those inputs; it reads nothing and writes nothing.

Stored fields it sets: ``subtotal``, ``total_discount``, ``total_prepaid_credits_applied``, ``total_tax``, ``total``,
``amount_due``, ``amount_remaining``; ``coupon_applications``, ``taxes`` (applied taxes), ``credit_applications``;
on each line ``line_item_discount``, ``invoice_level_discount`` and ``prepaid_credits_applied``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.domain import adjustments as rules
from billing.domain.money import format_money, round_minor
from billing.timeutil import parse_iso

ZERO = Decimal(0)


def _discount(item: Mapping[str, Any]) -> rules.Discount:
    return rules.Discount(
        id=str(item["coupon_association_id"] or item["coupon_id"]),
        name=str(item.get("name") or item["coupon_id"]),
        type=str(item["type"]),
        amount_off=Decimal(str(item.get("amount_off") or 0)),
        percentage_off=Decimal(str(item.get("percentage_off") or 0)),
        price_id=item.get("price_id"),
    )


def _tax(item: Mapping[str, Any]) -> rules.TaxRate:
    return rules.TaxRate(
        id=str(item["tax_rate_id"]),
        name=str(item.get("name") or item["tax_rate_id"]),
        type=str(item["tax_rate_type"]),
        percentage=Decimal(str(item.get("percentage_value") or 0)),
        fixed_amount=Decimal(str(item.get("fixed_value") or 0)),
    )


def _source(item: Mapping[str, Any]) -> rules.CreditSource:
    expires = item.get("expires_at")
    return rules.CreditSource(
        id=str(item["id"]),
        available=Decimal(str(item["available"])),
        priority=int(item.get("priority") or 0),
        expires_at=parse_iso(expires) if expires else None,
    )


def compute(
    record: Mapping[str, Any], credits: Sequence[Mapping[str, Any]] = (), at: datetime | None = None
) -> rules.Adjusted:
    inputs = record.get("adjustment_inputs") or {}
    return rules.adjust(
        record["currency"],
        [rules.Line(line["id"], Decimal(line["amount"]), line.get("price_id")) for line in record["line_items"]],
        discounts=[_discount(d) for d in inputs.get("discounts") or []],
        credits=[_source(c) for c in credits],
        taxes=[_tax(t) for t in inputs.get("taxes") or []],
        at=at,
    )


def apply(
    record: dict[str, Any], credits: Sequence[Mapping[str, Any]] = (), at: datetime | None = None
) -> dict[str, Any]:
    """``record`` with its adjusted totals, lines and applications (a new dict; the lines are copied)."""
    currency = record["currency"]
    out = compute(record, credits, at)
    inputs = record.get("adjustment_inputs") or {}
    by_line = {line.key: line for line in out.lines}
    lines = []
    for line in record["line_items"]:
        adjusted = by_line[line["id"]]
        lines.append(
            {
                **line,
                "line_item_discount": adjusted.line_discount,
                "invoice_level_discount": adjusted.invoice_discount,
                "prepaid_credits_applied": adjusted.credits,
            }
        )
    discounts = {_discount(d).id: d for d in inputs.get("discounts") or []}
    coupon_applications = []
    for n, applied in enumerate(out.discounts, start=1):
        source = discounts[applied.discount_id]
        coupon_applications.append(
            {
                "id": f"{record['id']}_cpn_{n:02d}" if record.get("id") else None,
                "coupon_id": source["coupon_id"],
                "coupon_association_id": source.get("coupon_association_id"),
                "name": source.get("name"),
                "invoice_line_item_id": applied.line_key,
                "discount_type": source["type"],
                "discount_percentage": source.get("percentage_off"),
                "original_price": applied.original,
                "discounted_amount": applied.amount,
                "final_price": applied.final,
                "currency": currency,
            }
        )
    sources = {str(c["id"]): c for c in credits}
    credit_applications = [
        {
            "wallet_id": sources[c.source_id].get("wallet_id") or c.source_id,
            "source_id": c.source_id,
            "name": sources[c.source_id].get("name"),
            "amount": c.amount,
        }
        for c in out.credits
    ]
    rates = {str(t["tax_rate_id"]): t for t in inputs.get("taxes") or []}
    taxes = [
        {
            "id": f"{record['id']}_tax_{n:02d}" if record.get("id") else None,
            "tax_rate_id": t.tax_id,
            "tax_association_id": rates[t.tax_id].get("tax_association_id"),
            "name": rates[t.tax_id].get("name"),
            "code": rates[t.tax_id].get("code"),
            "tax_rate_type": rates[t.tax_id]["tax_rate_type"],
            "percentage_value": rates[t.tax_id].get("percentage_value"),
            "fixed_value": rates[t.tax_id].get("fixed_value"),
            "entity_type": rates[t.tax_id].get("entity_type") or "invoice",
            "entity_id": rates[t.tax_id].get("entity_id"),
            "taxable_amount": t.taxable,
            "tax_amount": t.amount,
            "currency": currency,
        }
        for n, t in enumerate(out.taxes, start=1)
    ]
    paid = Decimal(str(record.get("amount_paid") or 0))
    due = max(out.total, ZERO)
    return {
        **record,
        "line_items": lines,
        "subtotal": out.subtotal,
        "total_discount": out.total_discount,
        "total_prepaid_credits_applied": out.total_credits,
        "total_tax": out.total_tax,
        "total": out.total,
        "amount_due": due,
        "amount_paid": round_minor(paid, currency),
        "amount_remaining": round_minor(max(due - paid, ZERO), currency),
        "coupon_applications": coupon_applications,
        "credit_applications": credit_applications,
        "taxes": taxes,
    }


def stripe_items(record: Mapping[str, Any]) -> list[tuple[str, Decimal, str]]:
    """(key, amount, description) of the Stripe invoice items that explain ``record``'s adjustments, after its lines:
    one negative item per discount and per credit source, one positive item per tax. With the lines they add up to
    ``total`` exactly, because ``total`` is the sum of these very amounts."""
    currency = record["currency"]
    names = {line["id"]: line.get("display_name") or line["id"] for line in record.get("line_items") or []}
    out: list[tuple[str, Decimal, str]] = []
    for n, app in enumerate(record.get("coupon_applications") or [], start=1):
        text = f"Discount: {app.get('name') or app['coupon_id']}"
        if app.get("invoice_line_item_id"):
            text += f" on {names.get(app['invoice_line_item_id'], app['invoice_line_item_id'])}"
        out.append((f"discount_{n:02d}", -Decimal(str(app["discounted_amount"])), text))
    for n, app in enumerate(record.get("credit_applications") or [], start=1):
        text = f"Prepaid credits: {app.get('name') or app['wallet_id']}"
        out.append((f"credits_{n:02d}", -Decimal(str(app["amount"])), text))
    for n, tax in enumerate(record.get("taxes") or [], start=1):
        taxable = format_money(Decimal(str(tax["taxable_amount"])), currency)
        if tax["tax_rate_type"] == rules.PERCENTAGE:
            rate = format(Decimal(str(tax["percentage_value"])).normalize(), "f")
            text = f"{tax.get('name') or tax['tax_rate_id']} ({rate}% of {taxable} {currency.upper()})"
        else:
            text = f"{tax.get('name') or tax['tax_rate_id']} (fixed)"
        out.append((f"tax_{n:02d}", Decimal(str(tax["tax_amount"])), text))
    return [item for item in out if item[1] != 0]
