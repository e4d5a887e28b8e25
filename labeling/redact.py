"""Optional PII redaction at ingest (``Project.redact_pii``): emails, phone numbers, card numbers.

Applied to message contents, ``response`` and ``alt_response`` before the row is stored, so nobody
(annotators included) ever sees the original text. Patterns are deliberately conservative: a card
number must pass the Luhn check, a phone number needs at least 9 digits.
"""

from __future__ import annotations

import re

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD_RE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
PHONE_RE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d(?!\w)")

EMAIL_TOKEN = "[EMAIL]"
CARD_TOKEN = "[CARD]"
PHONE_TOKEN = "[PHONE]"


def luhn_ok(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_TOKEN if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return PHONE_TOKEN if 9 <= len(digits) <= 15 else match.group(0)


def redact_text(text: str) -> str:
    """Replace emails, card numbers and phone numbers in ``text`` with placeholders."""
    if not text:
        return text
    text = EMAIL_RE.sub(EMAIL_TOKEN, text)
    text = CARD_RE.sub(_card, text)
    return PHONE_RE.sub(_phone, text)
