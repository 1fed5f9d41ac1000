"""The data contract: the canonical transaction, its validation and its JSON-ready record form.

Every source (generator, file, Kafka, API) turns its input into a :class:`Transaction` through
:func:`validate`; a row that breaks the contract raises :class:`InvalidTransaction` naming the
first offending field, so the caller can send it to a dead-letter sink and carry on.

>>> txn = validate({"transaction_id": "t1", "timestamp": "2026-01-01T08:15:30.123+01:00",
...                 "card_id": 42, "merchant_id": "m-7", "amount": "12.50", "scenario": "demo"})
>>> (txn.card_id, txn.amount, txn.timestamp_ms, txn.utc_offset_min, txn.extra)
('42', 12.5, 1767251730123, 60, {'scenario': 'demo'})
>>> to_record(txn)["timestamp"]
'2026-01-01T08:15:30.123+01:00'
>>> try:
...     validate({"transaction_id": "t1", "amount": -5})
... except InvalidTransaction as error:
...     print(error.field, "-", error.reason)
timestamp - is required

Validation is on the hot path (100k transactions/s on one core), so :func:`validate` is a
hand-written fast path for the common shapes (JSON numbers, CSV strings) with the careful error
reporting kept out of the way in small helpers that only run for bad input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

import msgspec

from fraudstream.model.errors import InputError

__all__ = [
    "CANONICAL_FIELDS",
    "REQUIRED_FIELDS",
    "InvalidTransaction",
    "Transaction",
    "format_timestamp",
    "parse_timestamp",
    "to_record",
    "validate",
]

MAX_STRING_CHARS = 256  # ids and optional strings
MAX_EXTRA_STRING_CHARS = 4096  # one extra value (strings; containers by their JSON size)
MAX_EXTRA_FIELDS = 64
MAX_AMOUNT = 1e9

CANONICAL_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "card_id",
    "merchant_id",
    "amount",
    "currency",
    "merchant_category",
    "channel",
    "country",
    "card_lat",
    "card_lon",
    "merchant_lat",
    "merchant_lon",
    "device_id",
    "ip",
    "is_fraud",
)
REQUIRED_FIELDS: tuple[str, ...] = ("transaction_id", "timestamp", "card_id", "merchant_id", "amount")
_CANONICAL_SET = frozenset(CANONICAL_FIELDS)


class Transaction(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One validated transaction; build it with :func:`validate`, not by hand."""

    transaction_id: str
    timestamp_ms: int  # event time, epoch milliseconds UTC
    utc_offset_min: int  # offset given in the input; local time = UTC + offset
    card_id: str
    merchant_id: str
    amount: float
    currency: str = "USD"
    merchant_category: str | None = None
    channel: str | None = None
    country: str | None = None
    card_lat: float | None = None
    card_lon: float | None = None
    merchant_lat: float | None = None
    merchant_lon: float | None = None
    device_id: str | None = None
    ip: str | None = None
    is_fraud: int | None = None
    extra: dict[str, Any] = {}  # unknown input fields, passed through to sinks


class InvalidTransaction(InputError, ValueError):
    """A record that breaks the data contract; ``field`` is the first offending field (None: not an object)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the exception picklable (Spark ships errors between processes).
        return (type(self), (self.field, self.reason))


# --------------------------------------------------------------------------- timestamps

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000
# Keep every accepted instant printable by format_timestamp (years 1..9999).
_MIN_MS = (1 - _EPOCH_ORDINAL) * _MS_PER_DAY
_MAX_MS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * _MS_PER_DAY - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_OFFSET_BY_ZONE: dict[tzinfo, int] = {timezone.utc: 0}  # whole-minute zones seen so far (< 2 * 24 * 60)
_SUFFIX_BY_OFFSET: dict[int, str] = {0: "Z"}


def parse_timestamp(value: Any) -> tuple[int, int]:
    """Turn an RFC 3339 string with offset, or epoch milliseconds, into ``(timestamp_ms, utc_offset_min)``.

    >>> parse_timestamp("2026-01-01T00:00:00.5-05:00")
    (1767243600500, -300)
    >>> parse_timestamp("1767225600000")
    (1767225600000, 0)
    """
    if type(value) is str:
        # The usual shape, checked cheaply: fromisoformat alone also takes ISO 8601 forms the
        # contract does not (no seconds, week dates); the slow path explains any refusal.
        if (
            len(value) >= 20
            and value[4] == "-"
            and value[7] == "-"
            and value[10] in "Tt "
            and value[13] == ":"
            and value[16] == ":"
        ):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return _parse_text_slow(value)
            offset = _OFFSET_BY_ZONE.get(moment.tzinfo)  # type: ignore[arg-type]
            if offset is not None:
                return (moment - _EPOCH) // _ONE_MS, offset
        return _parse_text_slow(value)
    if type(value) is int:
        if _MIN_MS <= value <= _MAX_MS:
            return value, 0
        raise InvalidTransaction("timestamp", f"epoch milliseconds out of range (years 1..9999), got {value}")
    return _parse_other(value)


def _parse_text_slow(text: str) -> tuple[int, int]:
    if not text:
        raise InvalidTransaction("timestamp", "is required")
    if text.isdigit() and text.isascii():
        return parse_timestamp(int(text))
    if text[-1:] == "z":  # RFC 3339 allows lower case; fromisoformat does not
        return parse_timestamp(text[:-1] + "Z")
    shown = repr(text[:64])
    if not (len(text) >= 19 and text[4] == "-" and text[7] == "-" and text[10] in "Tt " and text[13] == ":" and text[16] == ":"):
        raise InvalidTransaction("timestamp", f"must be an RFC 3339 timestamp with offset or epoch milliseconds, got {shown}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidTransaction("timestamp", f"not a valid RFC 3339 timestamp ({error}), got {shown}") from None
    if moment.tzinfo is None:
        raise InvalidTransaction("timestamp", f"has no UTC offset (naive times are ambiguous), got {shown}")
    delta = moment.utcoffset()
    if delta is None or delta % timedelta(minutes=1):
        raise InvalidTransaction("timestamp", f"UTC offset must be whole minutes, got {shown}")
    offset = _OFFSET_BY_ZONE[moment.tzinfo] = delta // timedelta(minutes=1)  # type: ignore[index]
    return (moment - _EPOCH) // _ONE_MS, offset


def _parse_other(value: Any) -> tuple[int, int]:
    if value is None or value == "":
        raise InvalidTransaction("timestamp", "is required")
    if isinstance(value, bool):
        raise InvalidTransaction("timestamp", f"must be an RFC 3339 string or epoch milliseconds, got {value!r}")
    if isinstance(value, float):
        raise InvalidTransaction("timestamp", f"epoch milliseconds must be an integer, got {value!r}")
    if hasattr(value, "__index__"):  # numpy integers
        return parse_timestamp(int(value))
    if isinstance(value, datetime):
        raise InvalidTransaction("timestamp", "pass an RFC 3339 string or epoch milliseconds, not a datetime object")
    raise InvalidTransaction("timestamp", f"must be an RFC 3339 string or epoch milliseconds, got {type(value).__name__}")


_TWO_DIGITS = tuple(f"{number:02d}" for number in range(60))
_THREE_DIGITS = tuple(f"{number:03d}" for number in range(1000))
_DAY_PREFIX: dict[int, str] = {}  # days since epoch -> "YYYY-MM-DDT"; consecutive events share days


def format_timestamp(timestamp_ms: int, utc_offset_min: int = 0) -> str:
    """Render epoch milliseconds as RFC 3339 in the given offset, with millisecond precision.

    >>> format_timestamp(1767225600000)
    '2026-01-01T00:00:00.000Z'
    >>> format_timestamp(1767225600000, 330)
    '2026-01-01T05:30:00.000+05:30'
    """
    days, in_day = divmod(timestamp_ms + utc_offset_min * 60_000, _MS_PER_DAY)
    day = _DAY_PREFIX.get(days)
    if day is None:
        if len(_DAY_PREFIX) >= 4096:
            _DAY_PREFIX.clear()
        day = _DAY_PREFIX[days] = date.fromordinal(_EPOCH_ORDINAL + days).isoformat() + "T"
    hours, in_hour = divmod(in_day, 3_600_000)
    minutes, in_minute = divmod(in_hour, 60_000)
    seconds, millis = divmod(in_minute, 1000)
    suffix = _SUFFIX_BY_OFFSET.get(utc_offset_min)
    if suffix is None:
        sign = "-" if utc_offset_min < 0 else "+"
        suffix = "%s%02d:%02d" % (sign, *divmod(abs(utc_offset_min), 60))
        _SUFFIX_BY_OFFSET[utc_offset_min] = suffix
    return f"{day}{_TWO_DIGITS[hours]}:{_TWO_DIGITS[minutes]}:{_TWO_DIGITS[seconds]}.{_THREE_DIGITS[millis]}{suffix}"


# --------------------------------------------------------------------------- field checks
# Each helper takes the fast path for the usual shape and falls back to the slow, explicit one.


def _required_id(value: Any, field: str) -> str:
    if type(value) is str and 0 < len(value) <= MAX_STRING_CHARS:
        return value
    if type(value) is int:
        return str(value)
    if value is None or value == "":
        raise InvalidTransaction(field, "is required")
    return _string_slow(value, field)


def _optional_string(value: Any, field: str) -> str | None:
    if type(value) is str and len(value) <= MAX_STRING_CHARS:
        return value or None
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    return _string_slow(value, field)


def _string_slow(value: Any, field: str) -> str:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidTransaction(field, f"is longer than {MAX_STRING_CHARS} characters ({len(value)})")
        return str(value)
    if hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
        return str(int(value))
    raise InvalidTransaction(field, f"must be a string, got {type(value).__name__}")


def _number(value: Any, field: str) -> float:
    """Accept JSON numbers and numeric strings (CSV); reject bools and anything else."""
    if type(value) is float:
        return value
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            raise InvalidTransaction(field, f"must be a number, got {value[:64]!r}") from None
    if type(value) is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise InvalidTransaction(field, f"must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidTransaction(field, f"must be a number, got {type(value).__name__}") from None


def _amount(value: Any) -> float:
    if type(value) is str and value:  # CSV
        try:
            amount = float(value)
        except ValueError:
            raise InvalidTransaction("amount", f"must be a number, got {value[:64]!r}") from None
    elif value is None or value == "":
        raise InvalidTransaction("amount", "is required")
    else:
        amount = _number(value, "amount")
    if 0.0 <= amount <= MAX_AMOUNT:  # also false for NaN; 0 is a card check (a zero-amount authorisation)
        return amount
    if not math.isfinite(amount):
        raise InvalidTransaction("amount", f"must be a finite number, got {amount!r}")
    if amount < 0:
        raise InvalidTransaction("amount", f"must be 0 or more, got {amount!r}")
    raise InvalidTransaction("amount", f"must be at most {MAX_AMOUNT:g}, got {amount!r}")


def _coordinate(value: Any, field: str, limit: float) -> float | None:
    if type(value) is str and value:  # CSV
        try:
            number = float(value)
        except ValueError:
            raise InvalidTransaction(field, f"must be a number, got {value[:64]!r}") from None
    elif value is None or value == "":
        return None
    else:
        number = _number(value, field)
    if -limit <= number <= limit:  # also false for NaN
        return number
    raise InvalidTransaction(field, f"must be within [-{limit:g}, {limit:g}], got {number!r}")


# Codes already checked, so the usual few cost one set lookup; bounded by 26**3 and 26**2.
_CURRENCIES_SEEN: set[str] = set()
_COUNTRIES_SEEN: set[str] = set()


def _code(value: Any, field: str, size: int, what: str, seen: set[str]) -> str:
    if type(value) is str and len(value) == size and value.isascii() and value.isalpha() and value.isupper():
        seen.add(value)
        return value
    raise InvalidTransaction(field, f"must be {what} ({size} capital letters), got {str(value)[:64]!r}")


def _currency(value: Any) -> str:
    if value is None or value == "":
        return "USD"
    return _code(value, "currency", 3, "an ISO 4217 code", _CURRENCIES_SEEN)


def _country(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _code(value, "country", 2, "an ISO 3166-1 alpha-2 code", _COUNTRIES_SEEN)


def _is_fraud(value: Any) -> int | None:
    if type(value) is str:  # CSV
        if value == "0" or value == "1":
            return int(value)
        if value == "":
            return None
    elif value is None:
        return None
    elif value == 0 or value == 1:  # bools, 0.0 / 1.0, numpy integers
        if type(value) is bool or type(value) is float or hasattr(value, "__index__"):
            return int(value)
    raise InvalidTransaction("is_fraud", f"must be 0 or 1, got {str(value)[:64]!r}")


# A source has few row shapes (key tuples): work out each one's extra names once.
_EXTRA_NAMES_BY_KEYS: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _extra_names(raw: dict[str, Any]) -> tuple[str, ...]:
    keys = tuple(raw)
    names = _EXTRA_NAMES_BY_KEYS.get(keys)
    if names is None:
        names = tuple(name for name in keys if name not in _CANONICAL_SET)
        if len(names) > MAX_EXTRA_FIELDS:
            raise InvalidTransaction(None, f"has {len(names)} unknown fields (at most {MAX_EXTRA_FIELDS})")
        for name in names:
            if type(name) is not str or not 0 < len(name) <= MAX_STRING_CHARS:
                raise InvalidTransaction(None, f"extra field names must be strings of 1 to {MAX_STRING_CHARS} characters")
        if len(_EXTRA_NAMES_BY_KEYS) >= 256:  # many shapes (sparse JSON): stay bounded
            _EXTRA_NAMES_BY_KEYS.clear()
        _EXTRA_NAMES_BY_KEYS[keys] = names
    return names


def _extras(raw: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    extra = {name: raw[name] for name in names}
    for name, value in extra.items():
        if type(value) is str:
            if len(value) > MAX_EXTRA_STRING_CHARS:
                raise InvalidTransaction(
                    name, f"extra value is longer than {MAX_EXTRA_STRING_CHARS} characters ({len(value)})"
                )
        elif value is not None and type(value) not in (int, float, bool):
            _check_extra_container(name, value)
    return extra


def _check_extra_container(name: str, value: Any) -> None:
    if not isinstance(value, (list, dict, str, int, float)):
        raise InvalidTransaction(name, f"extra value must be a JSON value, got {type(value).__name__}")
    try:
        size = len(msgspec.json.encode(value))
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidTransaction(name, f"extra value is not JSON-serialisable: {error}") from None
    if size > MAX_EXTRA_STRING_CHARS:
        raise InvalidTransaction(name, f"extra value is larger than {MAX_EXTRA_STRING_CHARS} bytes as JSON ({size})")


# --------------------------------------------------------------------------- public API


def validate(raw: Mapping[str, Any]) -> Transaction:
    """Check one record against the data contract and return it as a :class:`Transaction`.

    Empty strings and None mean "missing" for optional fields; unknown fields are kept in ``extra``.
    Raises :class:`InvalidTransaction` naming the first offending field, in ``CANONICAL_FIELDS`` order.
    """
    if type(raw) is not dict:
        if not isinstance(raw, Mapping):
            raise InvalidTransaction(None, f"expected an object with named fields, got {type(raw).__name__}")
        raw = dict(raw)
    # Each field: an inline check for the usual shape, else a helper that converts or explains.
    # The inlining is deliberate: calls cost ~50 ns each and this runs 100k times a second
    # (256 is MAX_STRING_CHARS, written as a literal for the same reason).
    get = raw.get
    value = get("transaction_id")
    transaction_id = value if type(value) is str and 0 < len(value) <= 256 else _required_id(value, "transaction_id")
    timestamp_ms, utc_offset_min = parse_timestamp(get("timestamp"))
    value = get("card_id")
    card_id = value if type(value) is str and 0 < len(value) <= 256 else _required_id(value, "card_id")
    value = get("merchant_id")
    merchant_id = value if type(value) is str and 0 < len(value) <= 256 else _required_id(value, "merchant_id")
    value = get("amount")
    amount = value if type(value) is float and 0.0 <= value <= MAX_AMOUNT else _amount(value)
    value = get("currency")
    currency = value if type(value) is str and value in _CURRENCIES_SEEN else _currency(value)
    value = get("merchant_category")
    merchant_category = (
        value if value is None or type(value) is str and 0 < len(value) <= 256 else _optional_string(value, "merchant_category")
    )
    value = get("channel")
    channel = value if value is None or type(value) is str and 0 < len(value) <= 256 else _optional_string(value, "channel")
    value = get("country")
    country = value if value is None or type(value) is str and value in _COUNTRIES_SEEN else _country(value)
    value = get("card_lat")
    card_lat = value if type(value) is float and -90.0 <= value <= 90.0 else _coordinate(value, "card_lat", 90.0)
    value = get("card_lon")
    card_lon = value if type(value) is float and -180.0 <= value <= 180.0 else _coordinate(value, "card_lon", 180.0)
    value = get("merchant_lat")
    merchant_lat = value if type(value) is float and -90.0 <= value <= 90.0 else _coordinate(value, "merchant_lat", 90.0)
    value = get("merchant_lon")
    merchant_lon = value if type(value) is float and -180.0 <= value <= 180.0 else _coordinate(value, "merchant_lon", 180.0)
    value = get("device_id")
    device_id = value if value is None or type(value) is str and 0 < len(value) <= 256 else _optional_string(value, "device_id")
    value = get("ip")
    ip = value if value is None or type(value) is str and 0 < len(value) <= 256 else _optional_string(value, "ip")
    value = get("is_fraud")
    is_fraud = value if value is None or type(value) is int and 0 <= value <= 1 else _is_fraud(value)
    names = _extra_names(raw)
    return Transaction(
        transaction_id=transaction_id,
        timestamp_ms=timestamp_ms,
        utc_offset_min=utc_offset_min,
        card_id=card_id,
        merchant_id=merchant_id,
        amount=amount,
        currency=currency,
        merchant_category=merchant_category,
        channel=channel,
        country=country,
        card_lat=card_lat,
        card_lon=card_lon,
        merchant_lat=merchant_lat,
        merchant_lon=merchant_lon,
        device_id=device_id,
        ip=ip,
        is_fraud=is_fraud,
        extra=_extras(raw, names) if names else {},
    )


# The optional fields after currency (which to_record always writes), in contract order.
_OPTIONAL_ORDER = CANONICAL_FIELDS[CANONICAL_FIELDS.index("currency") + 1 :]


def to_record(txn: Transaction) -> dict[str, Any]:
    """The canonical JSON-ready dict for ``txn``: RFC 3339 timestamp, extras merged back, None fields left out.

    ``validate(to_record(txn)) == txn`` for every validated ``txn``.
    """
    record: dict[str, Any] = {
        "transaction_id": txn.transaction_id,
        "timestamp": format_timestamp(txn.timestamp_ms, txn.utc_offset_min),
        "card_id": txn.card_id,
        "merchant_id": txn.merchant_id,
        "amount": txn.amount,
        "currency": txn.currency,
    }
    for name in _OPTIONAL_ORDER:
        value = getattr(txn, name)
        if value is not None:
            record[name] = value
    for name, value in txn.extra.items():
        record.setdefault(name, value)  # a canonical field always wins over a stray extra
    return record
