"""Period-end invoicing: compute an invoice's lines, write the draft, finalize it and advance the subscription.

One subscription period gives one invoice, whatever the number of attempts:

1. The draft is written with a deterministic id (``store.invoices.invoice_id_for``) and
   ``attribute_not_exists``: a second attempt finds the first one's draft and reuses its lines.
2. Finalization is ONE transaction: the invoice (condition: still DRAFT at the version read), the tenant's
   invoice-number counter (condition: the value read), the subscription moved to its next period (condition:
   its version), the billed-usage ledger, and the outbound-sync item. Either all of it happens or none, so a
   crash at any point leaves either a draft to finish or a finished period, never a burnt or a doubled number.
3. Zero totals (``API-CONTRACT.md``): a computed subscription invoice of zero is ``SKIPPED`` (no number, nothing
   to collect, no sync); an invoice finalized with a zero total has ``payment_status`` ``SUCCEEDED``.

Late usage: every usage line records the quantity it billed per (price, period) in the billed ledger. Each
later invoice re-reads the last ``late_usage_lookback_periods`` periods' usage from the counters and bills what
grew since as an adjustment line labelled with its period, priced as ``price(billed + late) - price(billed)``
(``domain.pricing.price_late_usage``); the ledger is updated in the same finalize transaction, so late units
are billed exactly once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import invoice as invoice_math
from billing.domain import metering as m
from billing.domain.money import round_minor
from billing.domain.periods import Period, Schedule
from billing.domain.pricing import as_price
from billing.errors import ServiceUnavailable, TooManyRequests
from billing.observability import add_amount_metric, logger, metrics
from billing.scope import Scope
from billing.services import usage as usage_service
from billing.settings import get_settings
from billing.store import catalog
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed, Table, backoff
from billing.store.entities import ACTIVE, strip_keys
from billing.timeutil import iso, parse_iso

ZERO = Decimal(0)
MAX_ATTEMPTS = 12
MAX_PERIODS_PER_MESSAGE = 400

CYCLE = "SUBSCRIPTION_CYCLE"
CREATE = "SUBSCRIPTION_CREATE"


# -- ports -----------------------------------------------------------------------------------------------------


def meter_usage(scope: Scope, meter: m.Meter, external_customer_id: str, start: datetime, end: datetime) -> Decimal:
    """The one place invoicing reads usage: a meter's value for a customer over ``[start, end)``, exact to the
    millisecond at both ends (whole minutes from the counters, the partial edge minutes from the events).

    Negative values are legitimate events (a refund-style correction of a SUM meter, a negative reading of a MAX
    meter), and the usage endpoints report the net figure as it is; what is billed is never below zero: corrections
    can cancel a period's usage, never turn it into a credit (docs/billing-math.md, "Negative usage").
    """
    lo, hi = m.truncate_ms(start), m.truncate_ms(end)
    if hi <= lo:
        return ZERO
    return max(usage_service.compute(scope, external_customer_id, meter, lo, hi).value, ZERO)


def _table() -> Table:
    return wiring.entities()


# -- subscriptions' periods ------------------------------------------------------------------------------------


def schedule_of(sub: Mapping[str, Any]) -> Schedule:
    return Schedule.of(
        parse_iso(sub["billing_anchor"]),
        sub["billing_period"],
        int(sub["billing_period_count"]),
        sub["billing_cycle"],
        sub.get("timezone") or "UTC",
    )


def current_period(sub: Mapping[str, Any]) -> Period:
    index = int(sub["current_period_index"])
    start, end = parse_iso(sub["current_period_start"]), parse_iso(sub["current_period_end"])
    return Period(index, start, end, start)


# -- lines -----------------------------------------------------------------------------------------------------


def _meters(scope: Scope, sub: Mapping[str, Any]) -> dict[str, m.Meter]:
    ids = [i["price"]["meter_id"] for i in sub["line_items"] if i["price"]["type"] == "USAGE"]
    if not ids:
        return {}
    return {mid: m.Meter.from_record(rec) for mid, rec in catalog.meters().get_many(scope, ids).items()}


def _ledger(scope: Scope, sub_id: str, limit: int) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    return _table().query(keys.billed_pk(scope, sub_id), forward=False, limit=limit, consistent=True)


def _late_usage(
    scope: Scope, sub: Mapping[str, Any], period: Period, meters: Mapping[str, m.Meter]
) -> tuple[list[invoice_math.LateUsage], list[dict[str, Any]]]:
    """Usage that grew, since it was invoiced, in the last invoiced periods; and the ledger changes that record it."""
    late: list[invoice_math.LateUsage] = []
    changes: list[dict[str, Any]] = []
    usage_prices = {i["price"]["id"]: i["price"] for i in sub["line_items"] if i["price"]["type"] == "USAGE"}
    for entry in _ledger(scope, sub["id"], get_settings().late_usage_lookback_periods):
        if entry["SK"] >= keys.key_time(period.start):
            continue
        ps, pe = parse_iso(entry["period_start"]), parse_iso(entry["period_end"])
        quantities = dict(entry["quantities"])
        for price_id, billed_raw in entry["quantities"].items():
            price = usage_prices.get(price_id)
            meter = meters.get(price["meter_id"]) if price else None
            if price is None or meter is None:
                continue
            billed = Decimal(billed_raw)
            now_quantity = meter_usage(scope, meter, sub["external_customer_id"], ps, pe)
            if now_quantity > billed:
                late.append(invoice_math.LateUsage(price, ps, pe, billed, now_quantity - billed))
                quantities[price_id] = now_quantity
        if quantities != entry["quantities"]:
            changes.append({"sk": entry["SK"], "quantities": quantities, "version": int(entry.get("version", 1))})
    return late, changes


def line_labels(sub: Mapping[str, Any], meters: Mapping[str, m.Meter]) -> dict[str, str]:
    """The name each line shows when its price has none: the meter's name (or event name) for usage, the plan's name
    for a fixed charge. Invoice lines, and the Stripe invoice items made from them, never show a price id."""
    labels: dict[str, str] = {}
    for item in sub["line_items"]:
        price = item["price"]
        meter = meters.get(price.get("meter_id") or "")
        if price["type"] == "USAGE" and meter is not None:
            labels[price["id"]] = meter.name or meter.event_name
        elif item.get("plan_display_name"):
            labels[price["id"]] = str(item["plan_display_name"])
    return labels


def _stored_line(
    sub: Mapping[str, Any], line: invoice_math.InvoiceLine, index: int, meters: Mapping[str, m.Meter]
) -> dict[str, Any]:
    item = next(i for i in sub["line_items"] if i["price"]["id"] == line.price_id)
    meter = meters.get(line.meter_id or "")
    stored: dict[str, Any] = {
        "id": f"inv_line_{index:03d}",
        "subscription_line_item_id": item["id"],
        "price_id": line.price_id,
        "price_type": line.price_type,
        "billing_model": item["price"]["billing_model"],
        "invoice_cadence": item["price"]["invoice_cadence"],
        "meter_id": line.meter_id,
        "meter_display_name": meter.event_name if meter else None,
        "display_name": line.description,
        "plan_display_name": item.get("plan_display_name"),
        "currency": sub["currency"],
        "quantity": line.quantity,
        "amount": line.amount,
        "price_unit_amount": None,
        "period_start": iso(line.period_start),
        "period_end": iso(line.period_end),
        "kind": "late_usage_adjustment" if line.is_adjustment else "charge",
        "metadata": {},
    }
    if line.price_type == "USAGE" and not line.is_adjustment:
        stored["billed"] = {
            "meter_id": line.meter_id,
            "period_start": iso(line.period_start),
            "quantity": line.quantity,
        }
    return stored


def compute_lines(
    scope: Scope,
    sub: Mapping[str, Any],
    period: Period,
    *,
    usage_until: datetime | None = None,
    advance_period: Period | None = None,
    include_arrear: bool = True,
    late_usage: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(lines, ledger changes) of the invoice closing ``period`` (built by ``domain.invoice.build_invoice``).

    ARREAR charges of ``period`` (usage over ``[period.start, usage_until or period.end)``), ADVANCE charges of
    ``advance_period`` when given, and adjustments for late usage of earlier invoiced periods.
    """
    meters = _meters(scope, sub)
    prices = [
        i["price"] for i in sub["line_items"] if i["price"]["type"] != "USAGE" or i["price"]["meter_id"] in meters
    ]
    end = min(usage_until, period.end) if usage_until else period.end
    usage: dict[str, Decimal] = {}
    if include_arrear:
        for meter in meters.values():
            usage[meter.id] = meter_usage(scope, meter, sub["external_customer_id"], period.start, end)
    late: list[invoice_math.LateUsage] = []
    ledger_changes: list[dict[str, Any]] = []
    if late_usage and include_arrear:
        late, ledger_changes = _late_usage(scope, sub, period, meters)
    built = invoice_math.build_invoice(
        currency=sub["currency"],
        prices=prices,
        period=period if include_arrear else None,
        advance_period=advance_period,
        usage=usage,
        late_usage=late,
        labels=line_labels(sub, meters),
    )
    lines = [_stored_line(sub, line, n, meters) for n, line in enumerate(built.lines, start=1)]
    by_key = {(i.period_start, as_price(i.price).id): i for i in late}
    for line in lines:
        if line["kind"] == "late_usage_adjustment":
            item = by_key[(parse_iso(line["period_start"]), line["price_id"])]
            line["metadata"] = {
                "adjustment": "late_usage",
                "usage_period_start": line["period_start"],
                "usage_period_end": line["period_end"],
                "billed_quantity": format(item.billed_quantity, "f"),
                "total_quantity": format(item.billed_quantity + item.late_quantity, "f"),
            }
    return lines, ledger_changes


def totals(lines: Sequence[Mapping[str, Any]], currency: str) -> dict[str, Decimal]:
    subtotal = round_minor(sum((Decimal(line["amount"]) for line in lines), ZERO), currency)
    return {
        "subtotal": subtotal,
        "total": subtotal,
        "amount_due": max(subtotal, ZERO),
        "amount_paid": round_minor(ZERO, currency),
        "amount_remaining": max(subtotal, ZERO),
    }


def invoice_record(
    scope: Scope,
    sub: Mapping[str, Any],
    invoice_id: str,
    period: Period,
    lines: list[dict[str, Any]],
    ledger_changes: list[dict[str, Any]],
    *,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    stamp = iso(now)
    for line in lines:
        line["id"] = f"{invoice_id.replace('inv_', 'inv_line_', 1)}_{line['id'][-3:]}"
    return {
        "id": invoice_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "customer_id": sub["customer_id"],
        "external_customer_id": sub["external_customer_id"],
        "subscription_id": sub["id"],
        "invoice_type": "SUBSCRIPTION",
        "invoice_status": "DRAFT",
        "payment_status": "PENDING",
        "currency": sub["currency"],
        **totals(lines, sub["currency"]),
        "period_start": iso(period.start),
        "period_end": iso(period.end),
        "billing_period": sub["billing_period"],
        "billing_sequence": period.index,
        "billing_reason": reason,
        "collection_method": sub.get("collection_method"),
        "idempotency_key": f"{sub['id']}:{reason}:{iso(period.start)}",
        "line_items": lines,
        "ledger_changes": ledger_changes,
        "metadata": {},
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": "invoicing",
        "updated_by": "invoicing",
        "version": 1,
    }


# -- finalization ----------------------------------------------------------------------------------------------


def number_text(value: int) -> str:
    return f"{get_settings().invoice_number_prefix}{value:06d}"


def read_counter(scope: Scope) -> int:
    pk, sk = keys.counter_key(scope)
    item = _table().get(pk, sk)
    return int(item["value"]) if item else 0


def _counter_op(scope: Scope, current: int) -> dict[str, Any]:
    pk, sk = keys.counter_key(scope)
    if current == 0:
        return _table().update_op(
            pk, sk, "SET #v = :n", condition="attribute_not_exists(PK)", names={"#v": "value"}, values={":n": 1}
        )
    return _table().update_op(
        pk, sk, "SET #v = :n", condition="#v = :c", names={"#v": "value"}, values={":n": current + 1, ":c": current}
    )


def _ledger_ops(scope: Scope, sub: Mapping[str, Any], invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
    table = _table()
    pk = keys.billed_pk(scope, sub["id"])
    ops: list[dict[str, Any]] = []
    if invoice["billing_reason"] == CYCLE:
        quantities = {
            line["price_id"]: line["billed"]["quantity"] for line in invoice["line_items"] if line.get("billed")
        }
        if quantities:
            ops.append(
                table.put_op(
                    {
                        "PK": pk,
                        "SK": keys.key_time(parse_iso(invoice["period_start"])),
                        "period_start": invoice["period_start"],
                        "period_end": invoice["period_end"],
                        "invoice_id": invoice["id"],
                        "quantities": quantities,
                        "version": 1,
                    },
                    condition="attribute_not_exists(PK)",
                )
            )
    for change in invoice.get("ledger_changes") or []:
        ops.append(
            table.update_op(
                pk,
                change["sk"],
                "SET quantities = :q, version = :nv",
                condition="version = :v",
                values={":q": change["quantities"], ":v": change["version"], ":nv": change["version"] + 1},
            )
        )
    return ops


def advanced(sub: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The subscription after its current period is invoiced: the next period, or cancelled if it was the last."""
    record = {**sub, "version": int(sub["version"]) + 1, "updated_at": iso(now), "updated_by": "invoicing"}
    if sub.get("last_period"):
        record["subscription_status"] = "cancelled"
        record["cancelled_at"] = sub.get("cancelled_at") or sub["current_period_end"]
        record["last_period"] = False
        record["invoiced_through"] = sub["current_period_end"]
        return record
    nxt = schedule_of(sub).at_index(int(sub["current_period_index"]) + 1)
    record["current_period_index"] = nxt.index
    record["current_period_start"] = iso(nxt.start)
    record["current_period_end"] = iso(nxt.end)
    record["invoiced_through"] = sub["current_period_end"]
    return record


def subscription_put_op(scope: Scope, record: Mapping[str, Any], expected_version: int) -> dict[str, Any]:
    repo = keys.subscriptions()
    return repo.table.put_op(
        repo.item(scope, record, subscription_indexes(scope, record)),
        condition="attribute_exists(PK) AND version = :v",
        values={":v": expected_version},
    )


def subscription_indexes(scope: Scope, record: Mapping[str, Any]) -> dict[str, str]:
    out = {
        "GSI1PK": keys.customer_subscriptions_key(scope, record["customer_id"]),
        "GSI1SK": record["id"],
    }
    if record["subscription_status"] != "cancelled" or record.get("last_period"):
        out.update(keys.due_keys(scope, record["id"], parse_iso(record["current_period_end"])))
    return out


def finalized(invoice: Mapping[str, Any], number: int | None, now: datetime, *, skip_zero: bool) -> dict[str, Any]:
    record = {**invoice, "version": int(invoice["version"]) + 1, "updated_at": iso(now)}
    record.pop("ledger_changes", None)
    if skip_zero and Decimal(invoice["total"]) == 0:
        record["invoice_status"] = "SKIPPED"
        record["payment_status"] = "SUCCEEDED"
        return record
    record["invoice_status"] = "FINALIZED"
    record["finalized_at"] = iso(now)
    record["issue_date"] = iso(now)
    record["due_date"] = iso(now)
    record["invoice_number"] = number_text(number or 0)
    if Decimal(invoice["total"]) <= 0:
        record["payment_status"] = "SUCCEEDED"
        record["paid_at"] = iso(now)
    return record


def _sync_op(scope: Scope, invoice: Mapping[str, Any]) -> dict[str, Any]:
    return _table().put_op(
        {
            "PK": keys.sync_pk(scope),
            "SK": invoice["id"],
            **keys.sync_keys(scope, invoice["id"], invoice["finalized_at"]),
            "invoice_id": invoice["id"],
            "tenant_id": scope.tenant_id,
            "environment_id": scope.environment_id,
            "status": "pending",
            "created_at": invoice["finalized_at"],
        },
        condition="attribute_not_exists(PK)",
    )


def finalize_ops(
    scope: Scope,
    invoice: Mapping[str, Any],
    counter: int,
    now: datetime,
    *,
    skip_zero: bool,
    expect_absent: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The finalized invoice and the ops that write it with its number and its sync item."""
    done = finalized(invoice, counter + 1, now, skip_zero=skip_zero)
    repo = keys.invoices()
    item = repo.item(scope, done, keys.invoice_indexes(scope, done))
    if expect_absent:
        put = repo.table.put_op(item, condition="attribute_not_exists(PK)")
    else:
        put = repo.table.put_op(
            item,
            condition="attribute_exists(PK) AND invoice_status = :d AND version = :v",
            values={":d": "DRAFT", ":v": int(invoice["version"])},
        )
    ops = [put]
    if done["invoice_status"] == "FINALIZED":
        ops.append(_counter_op(scope, counter))
        if Decimal(done["total"]) > 0:
            ops.append(_sync_op(scope, done))
    return done, ops


def finalize(
    scope: Scope,
    invoice: dict[str, Any],
    now: datetime,
    *,
    skip_zero: bool = True,
    known_sub: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Finalize a DRAFT invoice; a period-end draft also moves its subscription on, in the same transaction.

    ``known_sub`` is the subscription as the caller just read it (saves a read; its version guards the write).
    Retries on a concurrent number or subscription change; returns the stored invoice if someone else
    finalized it first.
    """
    for attempt in range(MAX_ATTEMPTS):
        if invoice["invoice_status"] != "DRAFT":
            return invoice
        sub = None
        if invoice["billing_reason"] == CYCLE and invoice.get("subscription_id"):
            current = (
                known_sub if known_sub is not None else keys.subscriptions().find(scope, invoice["subscription_id"])
            )
            known_sub = None  # a retry reads it again
            if (
                current is not None
                and current["current_period_start"] == invoice["period_start"]
                and (current["subscription_status"] != "cancelled" or current.get("last_period"))
            ):
                sub = current
        counter = read_counter(scope)
        done, ops = finalize_ops(scope, invoice, counter, now, skip_zero=skip_zero)
        if sub is not None:
            ops.append(subscription_put_op(scope, advanced(sub, now), int(sub["version"])))
            ops.extend(_ledger_ops(scope, sub, invoice))
        try:
            _table().transact(ops)
        except ConditionFailed as failed:
            if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                fresh = keys.invoices().get(scope, invoice["id"])
                if fresh["invoice_status"] != "DRAFT":
                    return fresh
                invoice = fresh
            backoff(attempt)
            continue
        except (ServiceUnavailable, TooManyRequests):
            backoff(attempt)
            continue
        if done["invoice_status"] == "FINALIZED":
            metrics.add_metric(name="InvoiceFinalized", unit="Count", value=1)
            add_amount_metric(name="InvoicedAmount", amount=Decimal(str(done["total"])), currency=done["currency"])
        else:
            metrics.add_metric(name="InvoiceSkipped", unit="Count", value=1)
        return done
    raise ServiceUnavailable("the invoice could not be finalized: too much contention; retry", {"retry_after": 1})


# -- the worker's unit of work ---------------------------------------------------------------------------------


def _advance_only(scope: Scope, sub: Mapping[str, Any], now: datetime) -> None:
    # A failed condition means someone else moved it on; the caller re-reads.
    with contextlib.suppress(ConditionFailed):
        _table().transact([subscription_put_op(scope, advanced(sub, now), int(sub["version"]))])


def draft(scope: Scope, sub: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The period-end draft of the subscription's current period: found if it exists, else computed and written."""
    period = current_period(sub)
    invoice_id = keys.invoice_id_for(scope, sub["id"], iso(period.start), period.end)
    repo = keys.invoices()
    found = repo.find(scope, invoice_id)
    if found is not None:
        return found
    nxt = None if sub.get("last_period") else schedule_of(sub).at_index(period.index + 1)
    lines, ledger_changes = compute_lines(scope, sub, period, advance_period=nxt)
    record = invoice_record(scope, sub, invoice_id, period, lines, ledger_changes, reason=CYCLE, now=now)
    try:
        repo.table.put(
            repo.item(scope, record, keys.invoice_indexes(scope, record)), condition="attribute_not_exists(PK)"
        )
    except ConditionFailed:
        return repo.get(scope, invoice_id)
    return record


def close_current_period(scope: Scope, sub: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Invoice the subscription's current period and move it on (idempotent)."""
    invoice = draft(scope, sub, now)
    if invoice["invoice_status"] == "DRAFT":
        return finalize(scope, invoice, now, known_sub=sub)
    # Finalized, skipped or voided by other means while the subscription still sits on this period.
    _advance_only(scope, sub, now)
    return invoice


def cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=get_settings().invoicing_grace_seconds)


def process(scope: Scope, subscription_id: str, now: datetime) -> list[str]:
    """Invoice every period of the subscription that ended before the cut-off, oldest first.

    Returns the ids of the invoices written or found, in period order.
    """
    limit = cutoff(now)
    done: list[str] = []
    repo = keys.subscriptions()
    for _ in range(MAX_PERIODS_PER_MESSAGE):
        sub = repo.find(scope, subscription_id)
        if sub is None:
            logger.warning("subscription to invoice is gone", extra={"subscription_id": subscription_id})
            return done
        if sub["subscription_status"] == "cancelled" and not sub.get("last_period"):
            return done
        if parse_iso(sub["current_period_end"]) > limit:
            return done
        invoice = close_current_period(scope, sub, now)
        done.append(invoice["id"])
    return done


# -- the opening invoice ---------------------------------------------------------------------------------------


def opening_invoice(scope: Scope, sub: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The SUBSCRIPTION_CREATE invoice of a subscription with ADVANCE charges (None without any)."""
    if not any(i["price"]["type"] == "FIXED" and i["price"]["invoice_cadence"] == "ADVANCE" for i in sub["line_items"]):
        return None
    period = current_period(sub)
    lines, _ = compute_lines(scope, sub, period, advance_period=period, include_arrear=False, late_usage=False)
    invoice_id = keys.invoice_id_for(scope, sub["id"], "create", period.start)
    return invoice_record(scope, sub, invoice_id, period, lines, [], reason=CREATE, now=now)


def load(scope: Scope, invoice_id: str) -> dict[str, Any]:
    return strip_keys(keys.invoices().get(scope, invoice_id))


# -- the scheduled fan-out -------------------------------------------------------------------------------------

SQS_BATCH = 10


def due_messages(now: datetime) -> list[dict[str, Any]]:
    """One message per subscription whose current period ended before the cut-off (one Query per shard)."""
    # Sort keys are "<period end>#<tenant>#...": "$" sorts right after "#", so periods ending exactly at the
    # cut-off are included.
    limit = keys.key_time(cutoff(now)) + "$"
    out = []
    for shard in range(keys.DUE_SHARDS):
        for item in _table().query_pages(keys.due_pk(shard), index="GSI2", sk_between=("0", limit)):
            out.append(
                {
                    "tenant_id": item["tenant_id"],
                    "environment_id": item["environment_id"],
                    "subscription_id": item["id"],
                    "period_start": item["current_period_start"],
                    "period_end": item["current_period_end"],
                }
            )
    return out


def send_batches(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """SendMessageBatch in groups of at most 10, resending entries SQS reports as failed. Returns the count sent."""
    sent = 0
    for start in range(0, len(messages), SQS_BATCH):
        chunk = messages[start : start + SQS_BATCH]
        assert len(chunk) <= SQS_BATCH
        entries = [{"Id": str(i), "MessageBody": json.dumps(msg, sort_keys=True)} for i, msg in enumerate(chunk)]
        for attempt in range(5):
            out = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            sent += len(out.get("Successful", []))
            failed = {f["Id"] for f in out.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                break
            backoff(attempt)
        if entries:
            raise ServiceUnavailable(f"{len(entries)} invoicing message(s) could not be queued")
    return sent


def find_due(sqs: Any, queue_url: str, now: datetime) -> dict[str, int]:
    messages = due_messages(now)
    sent = send_batches(sqs, queue_url, messages)
    metrics.add_metric(name="SubscriptionPeriodsDue", unit="Count", value=sent)
    logger.info("invoicing fan-out", extra={"due": len(messages), "sent": sent})
    return {"due": len(messages), "sent": sent}


def handle_message(body: Mapping[str, Any], now: datetime) -> list[str]:
    scope = Scope(str(body["tenant_id"]), str(body["environment_id"]))
    return process(scope, str(body["subscription_id"]), now)
