"""Find secrets, keys and card data in log text.

``scan(text, secrets=..., allow=...)`` returns one ``Finding`` per leak: the 1-based line number, the kind and the
line with every leaked value masked (the message never repeats a secret). Kinds:

- ``stripe_secret_key`` (``sk_test_``/``sk_live_``/``rk_test_``/``rk_live_`` + key characters),
  ``webhook_secret`` (``whsec_...``), ``client_secret`` (``seti_..._secret_...``, ``pi_..._secret_...``);
- ``api_key``: the product's own keys (``bk_`` + at least 16 URL-safe characters, see
  ``billing.services.apikeys.generate_key``);
- ``authorization``, ``x_api_key``, ``stripe_signature``: the values of those headers, in any notation
  (``Authorization: Bearer ...``, ``"x-api-key": "..."``, ``'stripe-signature': '...'``);
- ``card_number``: 13-19 digits (single spaces or hyphens between groups of 3-6 allowed) that pass the Luhn check,
  begin like a payment card (2-6) and are not an epoch timestamp (ms, us or ns between 2000 and 2040);
- ``card_cvc``: a ``cvc``/``cvv`` field with 3-4 digits; ``card_number_field``: a ``number`` field of 12-19 digits;
- ``known_secret``: any exact value passed in ``secrets`` (raw or URL-encoded), e.g. the keys a run used.

``allow`` is a set of exact lines that may contain a secret on purpose (the local stack's start-up banner prints
the dev key it was given); every other line is scanned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

_EPOCH_LOW = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
# Up to 2040: later "timestamps" would overlap real card ranges (Mastercard 2221-2720 read as microseconds is 2040+).
_EPOCH_HIGH = datetime(2040, 1, 1, tzinfo=UTC).timestamp()
_EPOCH_SCALES = {13: 1_000, 16: 1_000_000, 19: 1_000_000_000}


def _field(names: str, value: str) -> re.Pattern[str]:
    """A field or header named ``names`` (case-insensitive) in JSON, a Python repr, HTTP, form or logfmt notation,
    then its value as the group ``v``."""
    return re.compile(rf"""(?<![A-Za-z0-9_])(?i:{names})["'\]]?\s*[:=]\s*["']?(?P<v>{value})""")


PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stripe_secret_key", re.compile(r"(?<![A-Za-z0-9])(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,}")),
    ("webhook_secret", re.compile(r"(?<![A-Za-z0-9])whsec_[A-Za-z0-9+/=_-]{8,}")),
    ("client_secret", re.compile(r"(?<![A-Za-z0-9])(?:seti|pi)_[A-Za-z0-9]+_secret_[A-Za-z0-9_-]+")),
    ("api_key", re.compile(r"(?<![A-Za-z0-9_-])bk_[A-Za-z0-9_-]{16,}")),
    ("authorization", _field("authorization", r"(?i:bearer|basic)\s+[^\s\"',;]+")),
    ("authorization", re.compile(r"(?<![A-Za-z0-9])(?i:bearer)\s+(?P<v>[A-Za-z0-9._~+/-]{8,}=*)")),
    ("x_api_key", _field(r"x-api-key|x_api_key", r"[^\s\"',;}]{8,}")),
    ("stripe_signature", _field(r"stripe-signature|stripe_signature", r"[^\s\"';}]{8,}")),
    ("card_cvc", _field(r"cvc|cvv2?|card_cvc|card\[cvc|security_code", r"\d{3,4}\b")),
    ("card_number_field", _field(r"number|card\[number", r"\d{12,19}\b")),
)
# Digit groups joined by single spaces or hyphens, bounded by neither a word character, a dot, a hyphen nor a
# percent-escape (``%2012...`` is a space and ``12...``: lines with escapes are also scanned decoded).
_DIGITS = re.compile(r"(?<![\w.%-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.message}"


def mask(value: str) -> str:
    """The value with all but a short, non-secret head (a prefix like ``sk_test_``) and the length hidden."""
    if value.isdigit() or re.fullmatch(r"[\d -]+", value):
        digits = re.sub(r"\D", "", value)
        return f"[{len(digits)} digits ending {digits[-4:]}]" if len(digits) >= 12 else f"[{len(digits)} digits]"
    head = re.match(r"(?:[a-z]{2,5}_(?:test_|live_)?|bearer\s+|basic\s+)", value, re.IGNORECASE)
    shown = head.group(0) if head else ""
    return f"{shown}***[{len(value)} chars]"


def luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def is_epoch(digits: str) -> bool:
    scale = _EPOCH_SCALES.get(len(digits))
    return scale is not None and _EPOCH_LOW <= int(digits) / scale < _EPOCH_HIGH


def card_number(candidate: str) -> bool:
    """Whether a digit run (separators allowed) is a payment card number rather than an id, time or amount."""
    separators = set(re.findall(r"[ -]", candidate))
    if len(separators) > 1:
        return False
    groups = re.split(r"[ -]", candidate)
    if len(groups) > 1 and not all(3 <= len(g) <= 6 for g in groups):
        return False
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or len(set(digits)) == 1:
        return False
    return luhn(digits) and not (len(groups) == 1 and is_epoch(digits))


def _spans(line: str, secrets: Iterable[str]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(line):
            group = "v" if "v" in pattern.groupindex else 0
            if match.group(group):
                spans.append((match.start(group), match.end(group), kind))
    for match in _DIGITS.finditer(line):
        if card_number(match.group(0)):
            spans.append((match.start(), match.end(), "card_number"))
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            start = line.find(form)
            while start != -1:
                spans.append((start, start + len(form), "known_secret"))
                start = line.find(form, start + 1)
    return spans


def _masked(line: str, spans: list[tuple[int, int, str]], width: int = 240) -> str:
    """The line with every span masked, cut to ``width`` characters around the first one."""
    out, last, first = [], 0, -1
    for start, end, _kind in sorted(spans):
        start = max(start, last)  # overlapping findings: the earlier one already hides this part
        if start >= end:
            continue
        out.append(line[last:start])
        if first < 0:
            first = sum(len(part) for part in out)
        out.append(mask(line[start:end]))
        last = end
    out.append(line[last:])
    text = "".join(out)
    if len(text) <= width:
        return text.strip()
    begin = max(0, min(first - width // 3, len(text) - width))
    return ("..." if begin else "") + text[begin : begin + width].strip() + ("..." if begin + width < len(text) else "")


def scan(text: str, secrets: Iterable[str] = (), allow: Iterable[str] = ()) -> list[Finding]:
    """Every leak in ``text``, one finding per (line, kind); secrets shorter than 8 characters are ignored."""
    known = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)
    allowed = {line.rstrip("\r\n") for line in allow}
    findings: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line in allowed:
            continue
        spans = _spans(line, known)
        if spans:
            findings.extend(_findings(number, line, spans))
        if _ESCAPE.search(line):  # URL-encoded text: ``%3Dsk_test_...``, ``%22cvc%22%3A%22123%22``
            decoded = unquote(line)
            seen = {kind for _start, _end, kind in spans}
            more = _spans(decoded, known)
            findings.extend(f for f in _findings(number, decoded, more) if f.kind not in seen)
    return findings


def _findings(number: int, line: str, spans: list[tuple[int, int, str]]) -> list[Finding]:
    """One finding per kind on the line; each message is the line with every span masked."""
    if not spans:
        return []
    message = _masked(line, spans)
    return [Finding(number, kind, message) for kind in dict.fromkeys(kind for _start, _end, kind in spans)]


def report(findings: list[Finding], limit: int = 20) -> str:
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n".join(lines)
