"""The hosted pages Stripe serves to payers: Checkout, the hosted invoice page and the invoice PDF."""

from __future__ import annotations

from html import escape
from typing import Any

from stripe_emulator import money

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;color:#1a1f36}"
    "table{width:100%;border-collapse:collapse}td{padding:.3rem 0}td.r{text-align:right}"
    "input{font-size:1rem;padding:.4rem;width:16rem}button{font-size:1rem;padding:.4rem 1rem}"
    ".err{color:#cd3d64}"
)


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    ).encode()


def _card_form(action: str, button: str) -> str:
    return (
        f"<form method='post' action='{escape(action)}'>"
        "<p><label>Card number <input name='card' value='4242424242424242' autocomplete='off'></label></p>"
        f"<p><button type='submit'>{escape(button)}</button></p></form>"
    )


def checkout(session: dict[str, Any], error: str | None = None) -> bytes:
    title = "Save a card" if session["mode"] == "setup" else "Pay"
    rows = "".join(
        f"<tr><td>{escape(li['description'] or '')} x {li['quantity']}</td>"
        f"<td class='r'>{money.display(li['amount_total'], li['currency'])}</td></tr>"
        for li in session.get("_line_items", [])
    )
    total = (
        f"<tr><th>Total</th><td class='r'>{money.display(session['amount_total'], session['currency'])}</td></tr>"
        if session["mode"] == "payment"
        else ""
    )
    body = f"<h1>{title}</h1><p>Checkout session <code>{escape(session['id'])}</code></p>"
    body += f"<table>{rows}{total}</table>"
    if session["status"] != "open":
        body += f"<p>This session is <strong>{escape(session['status'])}</strong>.</p>"
    else:
        if error:
            body += f"<p class='err'>{escape(error)}</p>"
        body += _card_form(f"/checkout/{session['id']}", "Save card" if session["mode"] == "setup" else "Pay")
    return _page(title, body)


def invoice(inv: dict[str, Any], error: str | None = None) -> bytes:
    rows = "".join(
        f"<tr><td>{escape(line['description'] or '')}</td>"
        f"<td class='r'>{money.display(line['amount'], line['currency'])}</td></tr>"
        for line in inv.get("_lines", [])
    )
    body = (
        f"<h1>Invoice {escape(inv['number'] or inv['id'])}</h1>"
        f"<p>Status: <strong>{escape(inv['status'])}</strong></p>"
        f"<table>{rows}<tr><th>Amount due</th>"
        f"<td class='r'>{money.display(inv['amount_due'], inv['currency'])}</td></tr></table>"
        f"<p><a href='/invoice/{escape(inv['id'])}/pdf'>Download PDF</a></p>"
    )
    if inv["status"] in ("open", "uncollectible"):
        if error:
            body += f"<p class='err'>{escape(error)}</p>"
        body += _card_form(f"/invoice/{inv['id']}", "Pay invoice")
    return _page(f"Invoice {inv['number']}", body)


def invoice_pdf(inv: dict[str, Any]) -> bytes:
    """A small, valid one-page PDF listing the invoice's lines and total."""
    lines = [f"Invoice {inv['number'] or inv['id']}", f"Status: {inv['status']}", ""]
    lines += [
        f"{(line['description'] or '')[:60]}    {money.display(line['amount'], line['currency'])}"
        for line in inv.get("_lines", [])
    ]
    lines += ["", f"Total: {money.display(inv['total'], inv['currency'])}"]
    lines += [f"Amount due: {money.display(inv['amount_due'], inv['currency'])}"]

    def esc(s: str) -> str:
        return (
            s.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\\", "\\\\")
            .replace("(", "\\(")
            .replace(")", "\\)")
        )

    text = "BT /F1 12 Tf 50 780 Td 16 TL " + " ".join(f"({esc(s)}) '" for s in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text.encode('latin-1'))} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
