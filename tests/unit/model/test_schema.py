"""The data contract: what validate() accepts, what it rejects (naming the field), and round trips."""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.model.schema import (
    CANONICAL_FIELDS,
    REQUIRED_FIELDS,
    InvalidTransaction,
    Transaction,
    format_timestamp,
    parse_timestamp,
    to_record,
    validate,
)

JAN_1_2026_MS = 1_767_225_600_000


def valid_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "transaction_id": "tx-000000012345",
        "timestamp": "2026-01-01T08:15:30.123+00:00",
        "card_id": "card-00042",
        "merchant_id": "m-0007",
        "amount": 42.5,
        "currency": "USD",
        "merchant_category": "grocery",
        "channel": "card_present",
        "country": "US",
        "card_lat": 40.7,
        "card_lon": -74.0,
        "merchant_lat": 40.71,
        "merchant_lon": -74.01,
        "device_id": None,
        "ip": None,
        "is_fraud": 0,
        "scenario": "",
    }
    row.update(changes)
    return row


def rejection(row: Any) -> InvalidTransaction:
    with pytest.raises(InvalidTransaction) as caught:
        validate(row)
    return caught.value


# --------------------------------------------------------------------------- accepted input


def test_typical_row_becomes_a_transaction() -> None:
    txn = validate(valid_row())
    assert txn.transaction_id == "tx-000000012345"
    assert txn.timestamp_ms == JAN_1_2026_MS + (8 * 3600 + 15 * 60 + 30) * 1000 + 123
    assert txn.utc_offset_min == 0
    assert (txn.amount, txn.currency, txn.country, txn.is_fraud) == (42.5, "USD", "US", 0)
    assert (txn.device_id, txn.ip) == (None, None)
    assert txn.extra == {"scenario": ""}


def test_csv_strings_are_converted() -> None:
    row = {
        "transaction_id": "t1",
        "timestamp": str(JAN_1_2026_MS),
        "card_id": "c1",
        "merchant_id": "m1",
        "amount": "12.50",
        "card_lat": "40.5",
        "card_lon": "-73.25",
        "is_fraud": "1",
    }
    txn = validate(row)
    assert (txn.timestamp_ms, txn.utc_offset_min) == (JAN_1_2026_MS, 0)
    assert (txn.amount, txn.card_lat, txn.card_lon, txn.is_fraud) == (12.5, 40.5, -73.25, 1)


def test_numeric_ids_become_strings_and_unicode_ids_stay_intact() -> None:
    txn = validate(valid_row(card_id=2703186189652095, merchant_id="café-Zürich-東京-🛒", transaction_id="ü-1"))
    assert txn.card_id == "2703186189652095"
    assert txn.merchant_id == "café-Zürich-東京-🛒"
    assert txn.transaction_id == "ü-1"


def test_empty_optional_fields_mean_missing_and_currency_defaults_to_usd() -> None:
    txn = validate(valid_row(currency="", country="", merchant_category="", card_lat="", is_fraud=None))
    assert txn.currency == "USD"
    assert (txn.country, txn.merchant_category, txn.card_lat, txn.is_fraud) == (None, None, None, None)


def test_is_fraud_accepts_json_booleans_and_whole_floats() -> None:
    assert validate(valid_row(is_fraud=True)).is_fraud == 1
    assert validate(valid_row(is_fraud=0.0)).is_fraud == 0


def test_non_dict_mappings_are_accepted() -> None:
    assert validate(OrderedDict(valid_row())) == validate(valid_row())


@pytest.mark.parametrize("amount", [0, 0.0, "0", "0.00"])
def test_zero_amounts_are_accepted_as_card_checks(amount: Any) -> None:
    assert validate(valid_row(amount=amount)).amount == 0.0


def test_boundaries_are_inclusive() -> None:
    txn = validate(valid_row(amount=1e9, card_lat=-90, card_lon=180, merchant_lat=90.0, merchant_lon=-180.0))
    assert (txn.amount, txn.card_lat, txn.card_lon) == (1e9, -90.0, 180.0)


# --------------------------------------------------------------------------- rejected input


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
@pytest.mark.parametrize("how", ["absent", "none", "empty"])
def test_each_missing_required_field_is_named(field: str, how: str) -> None:
    row = valid_row()
    if how == "absent":
        del row[field]
    else:
        row[field] = None if how == "none" else ""
    error = rejection(row)
    assert error.field == field
    assert error.reason == "is required"
    assert str(error) == f"{field}: is required"


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (-5.0, "0 or more"),
        ("-0.01", "0 or more"),
        (float("nan"), "finite"),
        ("NaN", "finite"),
        (float("inf"), "finite"),
        ("-inf", "finite"),
        (1e9 + 1, "at most"),
        ("12,50", "must be a number"),
        ([12], "must be a number"),
        (True, "must be a number"),
    ],
)
def test_bad_amounts_are_rejected(amount: Any, words: str) -> None:
    error = rejection(valid_row(amount=amount))
    assert error.field == "amount"
    assert words in error.reason


@pytest.mark.parametrize(
    ("timestamp", "words"),
    [
        ("2026-01-01T08:15:30", "no UTC offset"),
        ("2026-01-01 08:15:30.123", "no UTC offset"),
        ("yesterday at noon", "RFC 3339"),
        ("2026-13-01T08:15:30Z", "month"),
        ("2026-01-01T08:15Z", "RFC 3339"),
        ("2026-W01-1T08:15:30Z", "RFC 3339"),
        ("2026-01-01T08:15:30+05:30:15", "whole minutes"),
        (1.7e12, "integer"),
        (True, "RFC 3339 string or epoch"),
        (10**20, "out of range"),
        ({"seconds": 1}, "RFC 3339 string or epoch"),
    ],
)
def test_bad_timestamps_are_rejected(timestamp: Any, words: str) -> None:
    error = rejection(valid_row(timestamp=timestamp))
    assert error.field == "timestamp"
    assert words in error.reason


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("currency", "usd", "ISO 4217"),
        ("currency", "DOLLAR", "ISO 4217"),
        ("currency", 840, "ISO 4217"),
        ("country", "USA", "ISO 3166-1"),
        ("country", "u1", "ISO 3166-1"),
        ("card_lat", 90.5, "within [-90, 90]"),
        ("card_lon", -180.01, "within [-180, 180]"),
        ("merchant_lat", "-91", "within [-90, 90]"),
        ("merchant_lon", float("nan"), "within [-180, 180]"),
        ("merchant_lon", "east", "must be a number"),
        ("is_fraud", 2, "0 or 1"),
        ("is_fraud", "yes", "0 or 1"),
        ("is_fraud", 0.5, "0 or 1"),
        ("card_id", 4.5, "must be a string"),
        ("merchant_id", ["m"], "must be a string"),
        ("channel", {"kind": "web"}, "must be a string"),
    ],
)
def test_bad_field_values_name_the_field(field: str, value: Any, words: str) -> None:
    error = rejection(valid_row(**{field: value}))
    assert error.field == field
    assert words in error.reason


@pytest.mark.parametrize("field", ["transaction_id", "card_id", "merchant_id", "merchant_category", "device_id", "ip"])
def test_strings_longer_than_256_characters_are_rejected(field: str) -> None:
    assert validate(valid_row(**{field: "x" * 256}))  # the limit itself is fine
    error = rejection(valid_row(**{field: "x" * 257}))
    assert error.field == field
    assert "256" in error.reason


def test_huge_extra_values_are_rejected_naming_the_extra_field() -> None:
    assert validate(valid_row(note="x" * 4096)).extra["note"] == "x" * 4096
    error = rejection(valid_row(note="x" * 4097))
    assert error.field == "note"
    error = rejection(valid_row(payload={"blob": "y" * 5000}))
    assert error.field == "payload"


def test_extra_values_must_be_json_values() -> None:
    error = rejection(valid_row(when=object()))
    assert error.field == "when"


def test_too_many_extra_fields_are_rejected() -> None:
    error = rejection(valid_row(**{f"extra_{i}": i for i in range(100)}))
    assert error.field is None
    assert "unknown fields" in error.reason


@pytest.mark.parametrize("record", [[1, 2, 3], "a string", 42, None])
def test_a_record_that_is_not_an_object_is_rejected_without_a_field(record: Any) -> None:
    error = rejection(record)
    assert error.field is None
    assert "object" in error.reason


def test_the_first_offending_field_is_reported() -> None:
    error = rejection(valid_row(amount=-1, currency="usd", card_lat=100))
    assert error.field == "amount"


def test_invalid_transaction_survives_pickling() -> None:
    error = rejection(valid_row(amount=-1))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.reason, str(copy)) == (error.field, error.reason, str(error))


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", (JAN_1_2026_MS, 0)),
        ("2026-01-01t00:00:00z", (JAN_1_2026_MS, 0)),
        ("2026-01-01 00:00:00+00:00", (JAN_1_2026_MS, 0)),
        ("2026-01-01T05:30:00+05:30", (JAN_1_2026_MS, 330)),
        ("2025-12-31T19:00:00-05:00", (JAN_1_2026_MS, -300)),
        ("2026-01-01T00:00:00.5Z", (JAN_1_2026_MS + 500, 0)),
        ("2026-01-01T00:00:00.123999999Z", (JAN_1_2026_MS + 123, 0)),  # truncated to ms
        (str(JAN_1_2026_MS), (JAN_1_2026_MS, 0)),
        (JAN_1_2026_MS, (JAN_1_2026_MS, 0)),
        (-1, (-1, 0)),
    ],
)
def test_parse_timestamp(text: Any, expected: tuple[int, int]) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("offset", [0, 60, -300, 330, 345, -(23 * 60 + 59), 23 * 60 + 59])
@pytest.mark.parametrize("ms", [0, JAN_1_2026_MS + 123, -62_135_596_800_000 + 86_400_000, 253_402_214_400_000])
def test_format_then_parse_gives_back_instant_and_offset(ms: int, offset: int) -> None:
    text = format_timestamp(ms, offset)
    assert parse_timestamp(text) == (ms, offset)


def test_format_timestamp_renders_the_offset_and_milliseconds() -> None:
    assert format_timestamp(JAN_1_2026_MS + 5, 0) == "2026-01-01T00:00:00.005Z"
    assert format_timestamp(JAN_1_2026_MS, -90) == "2025-12-31T22:30:00.000-01:30"


def test_local_hour_is_utc_plus_offset() -> None:
    txn = validate(valid_row(timestamp="2026-01-01T23:30:00-05:00"))
    local_hour = (txn.timestamp_ms // 60_000 + txn.utc_offset_min) // 60 % 24
    assert local_hour == 23


# --------------------------------------------------------------------------- to_record


def test_to_record_keeps_offset_and_extras_and_leaves_out_missing_fields() -> None:
    txn = validate(valid_row(timestamp="2026-01-01T09:15:30.123+01:00", scenario="card_testing", device_id=""))
    record = to_record(txn)
    assert record["timestamp"] == "2026-01-01T09:15:30.123+01:00"
    assert record["scenario"] == "card_testing"
    assert "device_id" not in record and "ip" not in record
    assert list(record)[: len(REQUIRED_FIELDS)] == list(REQUIRED_FIELDS)
    assert validate(record) == txn


def test_to_record_lets_canonical_fields_win_over_stray_extras() -> None:
    txn = Transaction(
        transaction_id="t", timestamp_ms=0, utc_offset_min=0, card_id="c", merchant_id="m", amount=1.0,
        extra={"amount": "oops", "note": "kept"},
    )
    record = to_record(txn)
    assert record["amount"] == 1.0
    assert record["note"] == "kept"


def test_canonical_fields_are_in_design_order() -> None:
    assert CANONICAL_FIELDS[:5] == REQUIRED_FIELDS
    assert CANONICAL_FIELDS[-1] == "is_fraud" and "timestamp" in CANONICAL_FIELDS
    assert len(set(CANONICAL_FIELDS)) == 16


# --------------------------------------------------------------------------- property


identifiers = st.one_of(st.text(min_size=1, max_size=256), st.integers(min_value=0, max_value=10**18))
optional_text = st.one_of(st.none(), st.text(min_size=1, max_size=256))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), st.text(max_size=64)
)


@st.composite
def valid_transactions(draw: st.DrawFn) -> Transaction:
    offset = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    ms = draw(st.integers(-62_135_596_800_000 + 86_400_000, 253_402_214_400_000))
    raw: dict[str, Any] = {
        "transaction_id": draw(identifiers),
        "timestamp": ms if offset == 0 and draw(st.booleans()) else format_timestamp(ms, offset),
        "card_id": draw(identifiers),
        "merchant_id": draw(identifiers),
        "amount": draw(st.floats(min_value=0.0, max_value=1e9, exclude_min=True)),
        "currency": draw(st.one_of(st.none(), st.from_regex(r"\A[A-Z]{3}\Z"))),
        "merchant_category": draw(optional_text),
        "channel": draw(optional_text),
        "country": draw(st.one_of(st.none(), st.from_regex(r"\A[A-Z]{2}\Z"))),
        "card_lat": draw(st.one_of(st.none(), st.floats(-90, 90))),
        "card_lon": draw(st.one_of(st.none(), st.floats(-180, 180))),
        "merchant_lat": draw(st.one_of(st.none(), st.floats(-90, 90))),
        "merchant_lon": draw(st.one_of(st.none(), st.floats(-180, 180))),
        "device_id": draw(optional_text),
        "ip": draw(optional_text),
        "is_fraud": draw(st.sampled_from([None, 0, 1])),
    }
    extra_names = st.text(min_size=1, max_size=20).filter(lambda name: name not in CANONICAL_FIELDS)
    raw.update(draw(st.dictionaries(extra_names, json_scalars, max_size=5)))
    return validate(raw)


@settings(max_examples=300, deadline=None)
@given(valid_transactions())
def test_validate_of_to_record_gives_back_the_transaction(txn: Transaction) -> None:
    assert validate(to_record(txn)) == txn


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*CANONICAL_FIELDS, "x"]), json_scalars, max_size=17))
def test_validate_either_accepts_or_names_a_field(raw: dict[str, Any]) -> None:
    try:
        txn = validate(raw)
    except InvalidTransaction as error:
        assert error.field in CANONICAL_FIELDS
        assert error.reason
    else:
        assert txn.amount > 0 and math.isfinite(txn.amount)
