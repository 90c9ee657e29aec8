"""Prepaid wallets: create, read, rename, top up, terminate, balances, transactions; credits spent at finalize.

Records (entities table):

- wallet ``PK=<p>#wallet``, ``SK=<id>``; ``GSI1PK=<p>#customer_wallets#<customer id>``. Besides
  ``WalletResponse``'s fields it holds its credit lots (``lots``: what is left of each top-up, with its priority and
  expiry, ``domain.wallet``) and ``credit_balance`` (the lots' sum, expired or not). Lots that are used up are
  dropped, so the item stays small.
- wallet transaction ``PK=<p>#wallet_tx#<wallet id>``, ``SK=<transaction id>``: append-only, written with
  ``attribute_not_exists`` in the same transaction as the wallet (condition: its version), so the balance and its
  transactions never disagree and a balance is never spent twice: of two finalizes spending one wallet, the second
  fails its condition, reads the wallet again and spends what is left. A top-up with an ``idempotency_key`` has an id
  derived from it, so a retried top-up credits once; an invoice's debit has an id derived from the invoice.

Expiry: the balance read anywhere is the sum of the lots alive at that instant, so an expired lot leaves the balance
at its expiry; the next write to the wallet records the expiry as a ``CREDIT_EXPIRED`` debit.

Money: a lot's credits pay ``credits * conversion_rate`` in the wallet's currency, in whole minor units rounded down
(a wallet never pays more than it holds); the credits taken for an amount are rounded up to 12 decimals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import wallet as rules
from billing.domain.money import round_minor
from billing.errors import InvalidOperation, ServiceUnavailable, not_found
from billing.ids import new_id
from billing.observability import metrics
from billing.pagination import page
from billing.schemas.wallets import TopUp, TransactionFilter, WalletCreate, WalletFilter, WalletUpdate, wallet_out
from billing.scope import Scope
from billing.store import catalog
from billing.store.dynamo import ConditionFailed, backoff
from billing.store.entities import ACTIVE, Entities, strip_keys
from billing.timeutil import iso, parse_iso

ATTEMPTS = 8
ZERO = Decimal(0)


def wallets() -> Entities:
    return Entities(wiring.entities(), "wallet", "wallet")


def _customer_key(scope: Scope, customer_id: str) -> str:
    return f"{scope.prefix}#customer_wallets#{customer_id}"


def _tx_pk(scope: Scope, wallet_id: str) -> str:
    return f"{scope.prefix}#wallet_tx#{wallet_id}"


def _indexes(scope: Scope, record: Mapping[str, Any]) -> dict[str, str]:
    return {"GSI1PK": _customer_key(scope, record["customer_id"]), "GSI1SK": record["id"]}


def _derived_id(*parts: str) -> str:
    return "wtx_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:26].upper()


def lots(record: Mapping[str, Any]) -> dict[str, rules.Lot]:
    return {
        lot_id: rules.Lot(
            Decimal(str(lot["available"])),
            None if lot.get("priority") is None else int(lot["priority"]),
            parse_iso(lot["expires_at"]) if lot.get("expires_at") else None,
            str(lot.get("created_at") or ""),
        )
        for lot_id, lot in (record.get("lots") or {}).items()
    }


def _stored(found: Mapping[str, rules.Lot]) -> dict[str, Any]:
    return {
        lot_id: {
            "available": lot.available,
            "priority": lot.priority,
            "expires_at": iso(lot.expires_at) if lot.expires_at else None,
            "created_at": lot.created_at,
        }
        for lot_id, lot in found.items()
        if lot.available > 0
    }


def live(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The wallet with ``live_credits``: the credits alive now."""
    return {**record, "live_credits": rules.balance(lots(record), now)}


def _transaction(
    scope: Scope,
    wallet: Mapping[str, Any],
    tx_id: str,
    kind: str,
    credits: Decimal,
    before: Decimal,
    reason: str,
    now: datetime,
    **fields: Any,
) -> dict[str, Any]:
    rate = Decimal(str(wallet["conversion_rate"]))
    after = before + credits if kind == "credit" else before - credits
    stamp = iso(now)
    return {
        "PK": _tx_pk(scope, wallet["id"]),
        "SK": tx_id,
        "id": tx_id,
        "wallet_id": wallet["id"],
        "customer_id": wallet["customer_id"],
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "type": kind,
        "credit_amount": credits,
        "amount": round_minor(credits * rate, wallet["currency"]),
        "credit_balance_before": before,
        "credit_balance_after": after,
        "credits_available": credits if kind == "credit" else ZERO,
        "transaction_reason": reason,
        "transaction_status": "completed",
        "currency": wallet["currency"],
        "conversion_rate": rate,
        "metadata": {},
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": "api",
        "updated_by": "api",
        **fields,
    }


def _expire(scope: Scope, record: dict[str, Any], now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Record the lots that expired by now: their credits leave the stored balance, one debit each."""
    found = lots(record)
    txs = []
    balance = Decimal(str(record.get("credit_balance") or 0))
    for lot_id, credits in rules.expired(found, now).items():
        txs.append(
            _transaction(
                scope,
                record,
                _derived_id(record["id"], "expired", lot_id),
                "debit",
                credits,
                balance,
                "CREDIT_EXPIRED",
                now,
                reference_type="EXTERNAL",
                reference_id=lot_id,
            )
        )
        balance -= credits
        found = rules.take(found, lot_id, credits)
    return {**record, "lots": _stored(found), "credit_balance": balance}, txs


def _write_ops(
    scope: Scope, current: Mapping[str, Any], record: Mapping[str, Any], txs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    repo = wallets()
    put = repo.table.put_op(
        repo.item(scope, record, _indexes(scope, record)),
        condition="attribute_exists(PK) AND version = :v",
        values={":v": int(current["version"])},
    )
    return [put, *(repo.table.put_op(tx, condition="attribute_not_exists(PK)") for tx in txs)]


# -- API -------------------------------------------------------------------------------------------------------


def create(scope: Scope, request: WalletCreate, now: datetime, actor: str = "api") -> dict[str, Any]:
    if request.customer_id:
        customer = catalog.customers().get_active(scope, request.customer_id)
    else:
        from billing.services import customers  # customers reaches wallets through taxes; import late

        customer = customers.get_by_external_id(scope, str(request.external_customer_id))
    rate = request.conversion_rate or Decimal(1)
    stamp = iso(now)
    record: dict[str, Any] = {
        "id": new_id("wallet"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "customer_id": customer["id"],
        "currency": request.currency,
        "name": request.name or "Prepaid wallet",
        "description": request.description,
        "wallet_type": "PRE_PAID",
        "wallet_status": "active",
        "conversion_rate": rate,
        "topup_conversion_rate": request.topup_conversion_rate or rate,
        "credit_balance": ZERO,
        "lots": {},
        "metadata": request.metadata or {},
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    ops: list[dict[str, Any]] = []
    if request.initial_credits_to_load:
        credits = request.initial_credits_to_load
        tx_id = new_id("wallet_transaction")
        expiry = request.initial_credits_expiry_date_utc
        tx = _transaction(
            scope,
            record,
            tx_id,
            "credit",
            credits,
            ZERO,
            "FREE_CREDIT_GRANT",
            now,
            expiry_date=iso(expiry) if expiry else None,
        )
        record["lots"] = _stored({tx_id: rules.Lot(credits, None, expiry, stamp)})
        record["credit_balance"] = credits
        ops.append(wallets().table.put_op(tx, condition="attribute_not_exists(PK)"))
    created = wallets().create(scope, record, indexes=_indexes(scope, record), extra_ops=ops)
    metrics.add_metric(name="WalletCreated", unit="Count", value=1)
    return live(created, now)


def get(scope: Scope, wallet_id: str, now: datetime) -> dict[str, Any]:
    return live(wallets().get(scope, wallet_id), now)


def update(scope: Scope, wallet_id: str, request: WalletUpdate, now: datetime) -> dict[str, Any]:
    for attempt in range(ATTEMPTS):
        current = wallets().get(scope, wallet_id)
        changes = request.model_dump(exclude_unset=True, exclude_none=True)
        record = {**current, **changes, "updated_at": iso(now), "version": int(current["version"]) + 1}
        try:
            wiring.entities().transact(_write_ops(scope, current, record, []))
            return live(record, now)
        except ConditionFailed:
            backoff(attempt)
    raise ServiceUnavailable(f"wallet {wallet_id} is changing too often; retry", {"retry_after": 1})


def for_customer(scope: Scope, customer_id: str, now: datetime) -> list[dict[str, Any]]:
    return [live(w, now) for w in wallets().list_by_index("GSI1", _customer_key(scope, customer_id))]


def search(scope: Scope, criteria: WalletFilter, now: datetime) -> dict[str, Any]:
    found = [
        w
        for w in wallets().list(scope)
        if (not criteria.wallet_ids or w["id"] in criteria.wallet_ids)
        and (not criteria.status or w["wallet_status"] == criteria.status)
    ]
    return page([live(w, now) for w in found], criteria.limit, criteria.offset, wallet_out)


def transactions(scope: Scope, wallet_id: str, criteria: TransactionFilter) -> dict[str, Any]:
    from billing.schemas.wallets import transaction_out

    wallets().get(scope, wallet_id)
    found = [strip_keys(t) for t in wiring.entities().query(_tx_pk(scope, wallet_id))]
    found = [
        t
        for t in found
        if (not criteria.type or t["type"] == criteria.type)
        and (not criteria.transaction_reason or t["transaction_reason"] == criteria.transaction_reason)
    ]
    found.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
    return page(found, criteria.limit, criteria.offset, transaction_out)


def _existing_tx(scope: Scope, wallet_id: str, tx_id: str) -> dict[str, Any] | None:
    found = wiring.entities().get(_tx_pk(scope, wallet_id), tx_id)
    return strip_keys(found) if found else None


def top_up(scope: Scope, wallet_id: str, request: TopUp, now: datetime) -> dict[str, Any]:
    """Credit the wallet (one lot, one credit transaction); ``{"wallet", "wallet_transaction"}``."""
    if request.transaction_reason == "PURCHASED_CREDIT_INVOICED":
        raise InvalidOperation(
            "PURCHASED_CREDIT_INVOICED top-ups are not offered: record the purchase as PURCHASED_CREDIT_DIRECT once "
            "it is paid",
            {"field": "transaction_reason"},
        )
    tx_id = (
        _derived_id(wallet_id, "topup", request.idempotency_key)
        if request.idempotency_key
        else new_id("wallet_transaction")
    )
    for attempt in range(ATTEMPTS):
        current = wallets().get(scope, wallet_id)
        if current["wallet_status"] != "active":
            raise InvalidOperation(f"wallet {wallet_id} is {current['wallet_status']}", {"id": wallet_id})
        if request.idempotency_key and (done := _existing_tx(scope, wallet_id, tx_id)) is not None:
            return {"wallet": live(current, now), "wallet_transaction": done}
        if request.credits_to_add is not None:
            credits = request.credits_to_add
        else:
            credits = rules.credits_for(Decimal(str(request.amount)), Decimal(str(current["topup_conversion_rate"])))
        record, txs = _expire(scope, current, now)
        before = Decimal(str(record["credit_balance"]))
        expiry = request.expiry_date_utc
        if expiry is not None and expiry <= now:
            raise InvalidOperation("expiry_date_utc must be in the future", {"field": "expiry_date_utc"})
        tx = _transaction(
            scope,
            record,
            tx_id,
            "credit",
            credits,
            before,
            request.transaction_reason,
            now,
            expiry_date=iso(expiry) if expiry else None,
            priority=request.priority,
            idempotency_key=request.idempotency_key,
            description=request.description,
            reference_type="REQUEST",
            reference_id=tx_id,
            metadata=request.metadata or {},
        )
        found = lots(record)
        found[tx_id] = rules.Lot(credits, request.priority, expiry, iso(now))
        record = {
            **record,
            "lots": _stored(found),
            "credit_balance": before + credits,
            "updated_at": iso(now),
            "version": int(current["version"]) + 1,
        }
        try:
            wiring.entities().transact(_write_ops(scope, current, record, [*txs, tx]))
        except ConditionFailed:
            backoff(attempt)
            continue
        metrics.add_metric(name="WalletToppedUp", unit="Count", value=1)
        return {"wallet": live(record, now), "wallet_transaction": strip_keys(tx)}
    raise ServiceUnavailable(f"wallet {wallet_id} is changing too often; retry", {"retry_after": 1})


def terminate(scope: Scope, wallet_id: str, now: datetime) -> dict[str, Any]:
    """Close the wallet: what is left is debited (``WALLET_TERMINATION``); nothing can be spent or added after."""
    for attempt in range(ATTEMPTS):
        current = wallets().get(scope, wallet_id)
        if current["wallet_status"] == "closed":
            return live(current, now)
        record, txs = _expire(scope, current, now)
        left = Decimal(str(record["credit_balance"]))
        if left > 0:
            txs.append(
                _transaction(
                    scope,
                    record,
                    _derived_id(wallet_id, "terminate"),
                    "debit",
                    left,
                    left,
                    "WALLET_TERMINATION",
                    now,
                    reference_type="REQUEST",
                    reference_id=wallet_id,
                )
            )
        record = {
            **record,
            "lots": {},
            "credit_balance": ZERO,
            "wallet_status": "closed",
            "updated_at": iso(now),
            "version": int(current["version"]) + 1,
        }
        try:
            wiring.entities().transact(_write_ops(scope, current, record, txs))
        except ConditionFailed:
            backoff(attempt)
            continue
        return live(record, now)
    raise ServiceUnavailable(f"wallet {wallet_id} is changing too often; retry", {"retry_after": 1})


def balance(scope: Scope, wallet_id: str, now: datetime) -> dict[str, Any]:
    return {**get(scope, wallet_id, now), "balance_updated_at": iso(now)}


# -- finalize ----------------------------------------------------------------------------------------------------


def credit_sources(
    scope: Scope, invoice: Mapping[str, Any], now: datetime
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(credit sources for ``services.adjustments``, the wallets read by id) of an invoice being finalized: every
    live lot of the customer's active wallets in the invoice's currency."""
    currency = str(invoice["currency"]).lower()
    found = {
        w["id"]: w
        for w in wallets().list_by_index("GSI1", _customer_key(scope, invoice["customer_id"]))
        if w["wallet_status"] == "active" and w["currency"] == currency
    }
    sources = []
    for wallet_id in sorted(found):
        wallet = found[wallet_id]
        rate = Decimal(str(wallet["conversion_rate"]))
        held = lots(wallet)
        for lot_id in rules.order(held, now):
            lot = held[lot_id]
            sources.append(
                {
                    "id": f"{wallet_id}|{lot_id}",
                    "wallet_id": wallet_id,
                    "name": wallet.get("name"),
                    "available": rules.worth(lot.available, rate, currency),
                    "priority": rules.NO_PRIORITY if lot.priority is None else lot.priority,
                    "expires_at": iso(lot.expires_at) if lot.expires_at else None,
                }
            )
    return sources, found


def debit_ops(
    scope: Scope, invoice: Mapping[str, Any], found: Mapping[str, dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The wallet writes and debit transactions of the credits ``invoice`` applies (one debit per wallet)."""
    spent: dict[str, list[tuple[str, Decimal]]] = {}
    for app in invoice.get("credit_applications") or []:
        wallet_id, lot_id = str(app["source_id"]).split("|", 1)
        spent.setdefault(wallet_id, []).append((lot_id, Decimal(str(app["amount"]))))
    ops: list[dict[str, Any]] = []
    for wallet_id, taken in spent.items():
        current = found[wallet_id]
        record, txs = _expire(scope, current, now)
        held = lots(record)
        rate = Decimal(str(current["conversion_rate"]))
        credits = ZERO
        for lot_id, amount in taken:
            part = min(rules.credits_for(amount, rate), held[lot_id].available)
            held = rules.take(held, lot_id, part)
            credits += part
        before = Decimal(str(record["credit_balance"]))
        tx = _transaction(
            scope,
            record,
            _derived_id(wallet_id, "invoice", str(invoice["id"])),
            "debit",
            credits,
            before,
            "INVOICE_PAYMENT",
            now,
            reference_type="INVOICE",
            reference_id=invoice["id"],
            description=f"Invoice {invoice.get('invoice_number') or invoice['id']}",
        )
        tx["amount"] = sum((amount for _, amount in taken), ZERO)
        record = {
            **record,
            "lots": _stored(held),
            "credit_balance": before - credits,
            "updated_at": iso(now),
            "version": int(current["version"]) + 1,
        }
        ops.extend(_write_ops(scope, current, record, [*txs, tx]))
    return ops


def payment_ops(
    scope: Scope, wallet_id: str, customer_id: str, currency: str, amount: Decimal, payment_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The wallet write and debit of a ``CREDITS`` payment of ``amount`` (lots in spending order); 400 when the
    wallet is not the customer's, not in the currency, closed, or cannot pay that much now."""
    current = require(scope, wallet_id)
    if current["customer_id"] != customer_id or current["currency"] != currency.lower():
        raise InvalidOperation(
            f"wallet {wallet_id} is not a {currency.upper()} wallet of the invoice's customer",
            {"field": "payment_method_id", "wallet_id": wallet_id},
        )
    if current["wallet_status"] != "active":
        raise InvalidOperation(f"wallet {wallet_id} is {current['wallet_status']}", {"wallet_id": wallet_id})
    record, txs = _expire(scope, current, now)
    held = lots(record)
    rate = Decimal(str(current["conversion_rate"]))
    left, credits = amount, ZERO
    for lot_id in rules.order(held, now):
        if left <= 0:
            break
        pays = min(rules.worth(held[lot_id].available, rate, currency), left)
        part = min(rules.credits_for(pays, rate), held[lot_id].available)
        held = rules.take(held, lot_id, part)
        credits += part
        left -= pays
    if left > 0:
        worth = rules.worth(rules.balance(lots(record), now), rate, currency)
        raise InvalidOperation(
            f"wallet {wallet_id} can pay {worth} {currency.upper()}, less than {amount}",
            {"field": "amount", "wallet_id": wallet_id, "available": str(worth)},
        )
    before = Decimal(str(record["credit_balance"]))
    tx = _transaction(
        scope,
        record,
        _derived_id(wallet_id, "payment", payment_id),
        "debit",
        credits,
        before,
        "INVOICE_PAYMENT",
        now,
        reference_type="PAYMENT",
        reference_id=payment_id,
    )
    tx["amount"] = amount
    record = {
        **record,
        "lots": _stored(held),
        "credit_balance": before - credits,
        "updated_at": iso(now),
        "version": int(current["version"]) + 1,
    }
    return _write_ops(scope, current, record, [*txs, tx])


def require(scope: Scope, wallet_id: str) -> dict[str, Any]:
    found = wallets().find(scope, wallet_id)
    if found is None:
        raise not_found("wallet", wallet_id)
    return found
