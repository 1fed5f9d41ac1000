"""Card numbers never stored in clear: a keyed hash for the id, a masked form for display and dead letters.

A ``card_id`` that is a card number (12 to 19 digits, optionally grouped by single spaces or dashes,
passing the Luhn check) becomes ``card_`` + the first 128 bits of HMAC-SHA256(key, digits) in hex:
the same key gives the same id on every runtime, so features, partitions and joins still work,
while the number cannot be recovered without the key. What people see is the display form, at most
the first six and last four digits (PCI DSS requirement 3.4.1), kept in the transaction's
``card_display`` extra field. Any other id (``card-17``, short or Luhn-invalid numbers) is left as it is.
Twelve digits is the shortest payment card number in use (Maestro's, e.g. ``630423337322``).

The same rule masks runs of digits in the raw text kept in dead letters, where the shortest
length costs more: any Luhn-valid run of 12 to 19 digits (one in ten of them) is masked, whatever
it is. Dates, times, amounts, zip codes, coordinates and Unix seconds (10 digits) are shorter and
never touched; epoch milliseconds (13 digits) already were candidates. Twelve-digit ids are new
candidates: ``fraudstream generate``'s ``tx-000000000123`` (a tenth of its rows: 4,066 of
40,615), 12-digit phone numbers written as one run, runs inside hexadecimal ids (0.31 % of random
32-hex ids, against 0.18 % at 13). Only the raw copy changes; the letter's field, reason and
position still say what was wrong and where.

>>> ids = CardIds(b"k" * 32)
>>> card_id, shown = ids.pseudonym("4111 1111 1111 1111")
>>> card_id == ids.pseudonym("4111111111111111")[0], len(card_id), shown
(True, 37, '411111******1111')
>>> ids.pseudonym("card-17") is None, ids.pseudonym("4111111111111112") is None
(True, True)
>>> mask_card_numbers('t9,"4111-1111-1111-1111",12.5,630423337322,1546300818')
't9,"411111******1111",12.5,630423**7322,1546300818'
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

import msgspec

from fraudstream.model.errors import InputError
from fraudstream.model.schema import Transaction

__all__ = [
    "CARD_DISPLAY", "CardIds", "CardKeyMissing", "card_digits", "display_form", "luhn_valid",
    "mask_card_numbers", "mask_card_numbers_bytes",
]

CARD_DISPLAY = "card_display"  # the extra field holding the masked number
PREFIX = "card_"
MIN_DIGITS, MAX_DIGITS = 12, 19  # ISO/IEC 7812 card numbers in use: Maestro's 12 to 19
CACHE_SIZE = 1 << 16  # raw ids whose hash is remembered (a card's events come in runs)

# A run of digits with at most one space or dash between two digits; checked as a whole, then by groups.
_RUN = re.compile(r"\d(?:[ -]?\d)*")
_RUN_BYTES = re.compile(rb"\d(?:[ -]?\d)*")
_SEPARATORS = str.maketrans("", "", " -")


class CardKeyMissing(InputError):
    """A card number arrived but no card-id key was given, so it cannot be hashed (and is never kept in clear)."""


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn check.

    >>> luhn_valid("79927398713"), luhn_valid("79927398710")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_digits(value: str) -> str | None:
    """The digits of ``value`` if it is a card number (12-19 digits, single spaces or dashes between, Luhn-valid)."""
    if not (MIN_DIGITS <= len(value) <= 2 * MAX_DIGITS - 1):
        return None
    digits = value if value.isdigit() else value.translate(_SEPARATORS)
    if not (MIN_DIGITS <= len(digits) <= MAX_DIGITS and digits.isascii() and digits.isdigit()):
        return None
    if digits is not value and _RUN.fullmatch(value) is None:  # "4111--1111..." or a leading dash: not a number
        return None
    return digits if luhn_valid(digits) else None


def display_form(digits: str) -> str:
    """At most the first six and last four digits, the rest as ``*`` (PCI DSS 3.4.1); length kept.

    >>> display_form("4111111111111111"), display_form("4222222222222"), display_form("630423337322")
    ('411111******1111', '422222***2222', '630423**7322')
    """
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _mask_run(run: str) -> str:
    digits = card_digits(run)
    if digits is not None:
        return display_form(digits)
    if run.isdigit():
        return run
    # "123 4111111111111111": the whole run is no card number, but one of its groups may be.
    return re.sub(r"\d+", lambda group: _mask_run(group.group()) if len(group.group()) >= MIN_DIGITS else group.group(), run)


def mask_card_numbers(text: str) -> str:
    """``text`` with every card number replaced by its display form (for raw rows kept in dead letters)."""
    if len(text) < MIN_DIGITS:
        return text
    return _RUN.sub(lambda run: _mask_run(run.group()) if len(run.group()) >= MIN_DIGITS else run.group(), text)


def mask_card_numbers_bytes(data: bytes) -> bytes:
    """:func:`mask_card_numbers` for raw bytes (a Kafka message), leaving every other byte as it is."""
    def masked(run: re.Match[bytes]) -> bytes:
        found = run.group()
        return _mask_run(found.decode("ascii")).encode("ascii") if len(found) >= MIN_DIGITS else found

    return _RUN_BYTES.sub(masked, data) if len(data) >= MIN_DIGITS else data


class CardIds:
    """Turns card numbers into keyed ids and display forms; ``key`` may be a function called on the first number.

    With ``key=None`` a card number raises :class:`CardKeyMissing`: never hashed with a guessable key,
    never passed on in clear. Hashes are cached per raw id (bounded LRU).
    """

    def __init__(self, key: bytes | Callable[[], bytes] | None, cache_size: int = CACHE_SIZE) -> None:
        self._key = key
        self._hmac_key: bytes | None = None
        self.pseudonym: Callable[[str], tuple[str, str] | None] = functools.lru_cache(maxsize=cache_size)(self._pseudonym)

    def __repr__(self) -> str:  # never shows the key
        return f"CardIds(key={'set' if self._key is not None else 'missing'})"

    def _resolve_key(self) -> bytes:
        if self._hmac_key is None:
            key = self._key() if callable(self._key) else self._key
            if not key:
                raise CardKeyMissing(
                    "a card_id is a card number but no card-id key is configured: set FRAUDSTREAM_CARD_ID_KEY "
                    "(card numbers are never stored in clear)"
                )
            self._hmac_key = key
        return self._hmac_key

    def _pseudonym(self, card_id: str) -> tuple[str, str] | None:
        digits = card_digits(card_id)
        if digits is None:
            return None
        mac = hmac.new(self._resolve_key(), digits.encode("ascii"), hashlib.sha256).hexdigest()[:32]  # 128 bits
        return PREFIX + mac, display_form(digits)

    def apply(self, txn: Transaction) -> Transaction:
        """``txn`` with a card-number ``card_id`` replaced by its keyed id and ``card_display`` set; else ``txn``."""
        card_id = txn.card_id
        if not card_id[:1].isdigit():  # the usual non-card id ("card-17", "c42"): no cache lookup
            return txn
        found = self.pseudonym(card_id)
        if found is None:
            return txn
        return msgspec.structs.replace(txn, card_id=found[0], extra={**txn.extra, CARD_DISPLAY: found[1]})

    def apply_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A raw row (before validation) with a card-number ``card_id`` replaced the same way (the producer's)."""
        value = row.get("card_id")
        if type(value) is int:
            value = str(value)
        found = self.pseudonym(value) if type(value) is str else None
        if found is None:
            return row
        return {**row, "card_id": found[0], CARD_DISPLAY: found[1]}
