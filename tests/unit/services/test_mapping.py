"""Column mappings: presets, user TOML files, timestamp formats, and clear errors for bad mappings."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from fraudstream.model.schema import validate
from fraudstream.services.sources.mapping import (
    FORMATS,
    ColumnMapping,
    MappingError,
    load_mapping,
    parse_timezone,
    resolve_format,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"
JAN_1_2019_MS = 1_546_300_800_000


def write(tmp_path: Path, text: str, name: str = "mapping.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SPARKOV_ROW = {
    "": "0",
    "trans_date_trans_time": "2019-01-01 00:00:18",
    "cc_num": "2703186189652095",
    "merchant": "fraud_Rippin, Kub and Mann",
    "category": "misc_net",
    "amt": "4.97",
    "first": "Jennifer",
    "city_pop": "3495",
    "trans_num": "0b242abb623afc578575680df30655b9",
    "unix_time": "1325376018",
    "lat": "36.0788",
    "long": "-81.1781",
    "merch_lat": "36.011293",
    "merch_long": "-82.048315",
    "is_fraud": "1",
}


# --------------------------------------------------------------------------- presets


def test_formats_resolve() -> None:
    assert FORMATS == ("canonical", "sparkov", "handbook")
    assert resolve_format("canonical") is None
    assert resolve_format("sparkov").name == "sparkov"  # type: ignore[union-attr]
    assert resolve_format("Handbook").name == "handbook"  # type: ignore[union-attr]


def test_unknown_format_lists_the_choices() -> None:
    with pytest.raises(MappingError, match="canonical, sparkov, handbook"):
        resolve_format("kaggle")


def test_sparkov_row_maps_to_a_valid_transaction() -> None:
    txn = validate(resolve_format("sparkov").apply(SPARKOV_ROW))  # type: ignore[union-attr]
    assert txn.transaction_id == "0b242abb623afc578575680df30655b9"
    assert (txn.timestamp_ms, txn.utc_offset_min) == (JAN_1_2019_MS + 18_000, 0)
    assert (txn.card_id, txn.merchant_id, txn.merchant_category) == ("2703186189652095", "fraud_Rippin, Kub and Mann", "misc_net")
    assert (txn.amount, txn.currency, txn.country, txn.is_fraud) == (4.97, "USD", "US", 1)
    assert (txn.card_lat, txn.card_lon, txn.merchant_lat, txn.merchant_lon) == (36.0788, -81.1781, 36.011293, -82.048315)
    assert txn.extra == {"first": "Jennifer", "city_pop": "3495"}  # index column and used columns left out


def test_sparkov_falls_back_to_unix_time_in_seconds() -> None:
    row = dict(SPARKOV_ROW, trans_date_trans_time="")
    assert resolve_format("sparkov").apply(row)["timestamp"] == 1_325_376_018_000  # type: ignore[union-attr]


def test_handbook_row_maps_to_a_valid_transaction() -> None:
    row = {
        "Unnamed: 0": "4",
        "TRANSACTION_ID": "4",
        "TX_DATETIME": "2018-04-01 00:10:34",
        "CUSTOMER_ID": "927",
        "TERMINAL_ID": "9906",
        "TX_AMOUNT": "50.99",
        "TX_TIME_SECONDS": "634",
        "TX_TIME_DAYS": "0",
        "TX_FRAUD": "1",
        "TX_FRAUD_SCENARIO": "1",
    }
    txn = validate(resolve_format("handbook").apply(row))  # type: ignore[union-attr]
    assert (txn.transaction_id, txn.card_id, txn.merchant_id, txn.amount, txn.is_fraud) == ("4", "927", "9906", 50.99, 1)
    assert txn.timestamp_ms == 1_522_541_434_000
    assert txn.extra == {"TX_TIME_SECONDS": "634", "TX_TIME_DAYS": "0", "TX_FRAUD_SCENARIO": "1"}


# --------------------------------------------------------------------------- user mappings


def test_user_mapping_file_with_timezone_and_defaults() -> None:
    mapping = load_mapping(FIXTURES / "bank_mapping.toml")
    assert (mapping.name, mapping.timezone_offset_min, mapping.defaults) == ("bank", 60, {"currency": "EUR", "country": "FR"})
    row = {"Ref": "B-1", "Posted": "05/01/2026 14:30:00", "Card": "4111", "Shop": "s1", "Value": "19.90", "Ccy": "", "Note": "x"}
    txn = validate(mapping.apply(row))
    assert (txn.utc_offset_min, txn.currency, txn.country) == (60, "EUR", "FR")
    assert txn.timestamp_ms == 1_767_619_800_000  # 13:30 UTC
    assert txn.extra == {"Note": "x"}


def test_candidates_take_the_first_present_non_empty_column(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, """
[columns]
transaction_id = "id"
card_id = ["pan", "account", "customer"]
merchant_id = "shop"
amount = "amount"
timestamp = [{ column = "when", format = "rfc3339" }, { column = "epoch", format = "epoch_ms" }]
"""))
    row = {"id": "1", "pan": "", "account": None, "customer": "cust-9", "shop": "s", "amount": 3, "epoch": "1000"}
    out = mapping.apply(row)
    assert (out["card_id"], out["timestamp"]) == ("cust-9", 1000)
    assert mapping.name == "mapping"  # from the file name


@pytest.mark.parametrize(
    ("fmt", "timezone", "value", "expected"),
    [
        ("auto", "UTC", "2026-01-01 00:00:00", 1_767_225_600_000),
        ("auto", "+02:00", "2026-01-01 02:00:00", "2026-01-01T02:00:00.000+02:00"),
        ("auto", "UTC", "2026-01-01T02:00:00+02:00", "2026-01-01T02:00:00+02:00"),
        ("auto", "UTC", "1767225600000", "1767225600000"),
        ("epoch_s", "UTC", "1767225600", 1_767_225_600_000),
        ("epoch_s", "UTC", "1767225600.25", 1_767_225_600_250),
        ("epoch_s", "UTC", 1767225600, 1_767_225_600_000),
        ("epoch_ms", "UTC", "1767225600000", 1_767_225_600_000),
        ("%Y-%m-%d %H:%M:%S", "-05:00", "2026-01-01 00:00:00", "2026-01-01T00:00:00.000-05:00"),
        ("%d.%m.%Y %H:%M", "UTC", "01.01.2026 00:00", 1_767_225_600_000),
        ("%Y-%m-%dT%H:%M:%S%z", "UTC", "2026-01-01T01:00:00+0100", "2026-01-01T01:00:00.000+01:00"),
    ],
)
def test_timestamp_formats(fmt: str, timezone: str, value: Any, expected: Any) -> None:
    mapping = ColumnMapping("t", {}, timestamp_format=fmt, timezone_offset_min=parse_timezone(timezone))
    assert mapping.apply({"timestamp": value})["timestamp"] == expected


def test_every_timestamp_format_gives_the_same_instant() -> None:
    rows = {
        "auto": "2026-01-01 08:00:00",
        "epoch_s": "1767254400",
        "epoch_ms": "1767254400000",
        "%Y-%m-%d %H:%M:%S": "2026-01-01 08:00:00",
        "%Y/%m/%d %H:%M:%S": "2026/01/01 08:00:00",
    }
    instants = {fmt: validate(_row_with(ColumnMapping("t", {}, timestamp_format=fmt).apply({"timestamp": v}))).timestamp_ms
                for fmt, v in rows.items()}
    assert set(instants.values()) == {1_767_254_400_000}


def _row_with(mapped: dict[str, Any]) -> dict[str, Any]:
    return {"transaction_id": "t", "card_id": "c", "merchant_id": "m", "amount": 1, **mapped}


@pytest.mark.parametrize(
    ("fmt", "value"),
    [("%Y-%m-%d %H:%M:%S", "2026-02-30 00:00:00"), ("%Y-%m-%d %H:%M:%S", "soon"), ("epoch_s", "a while ago")],
)
def test_unparseable_timestamps_raise_invalid_transaction_for_the_timestamp(fmt: str, value: str) -> None:
    mapping = ColumnMapping("t", {}, timestamp_format=fmt)
    with pytest.raises(ValueError) as caught:
        mapping.apply({"timestamp": value})
    assert getattr(caught.value, "field", None) == "timestamp"


# --------------------------------------------------------------------------- id formats


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("60416207185", "060416207185"),  # Sparkov's Maestro 0604... written as an integer
        (60416207185, "060416207185"),  # the same from JSON
        ("7", "000000000007"),
        ("630423337322", "630423337322"),  # already 12 digits
        ("2703186189652095", "2703186189652095"),  # longer: as it is
        (2703186189652095, 2703186189652095),
        ("card-17", "card-17"),  # not all digits: as it is
        ("6041 6207 185", "6041 6207 185"),
        ("٦٠٤١٦٢٠٧١٨٥", "٦٠٤١٦٢٠٧١٨٥"),  # non-ASCII digits
        (-5, -5),
        (True, True),
    ],
)
def test_digits_format_restores_the_leading_zeros_a_source_lost(value: Any, expected: Any) -> None:
    mapping = ColumnMapping("t", {"card_id": {"column": "cc_num", "format": "digits:12"}})
    assert mapping.apply({"cc_num": value})["card_id"] == expected


def test_sparkov_restores_the_leading_zero_of_its_12_digit_maestro_numbers() -> None:
    mapping = resolve_format("sparkov")
    assert mapping is not None
    for cc_num in ("60416207185", 60416207185):
        row = dict(SPARKOV_ROW, cc_num=cc_num)
        assert validate(mapping.apply(row)).card_id == "060416207185"
        assert mapping.row_builder(list(row))(list(row.values())) == mapping.apply(row)
    assert mapping.apply(SPARKOV_ROW)["card_id"] == "2703186189652095"


def test_each_candidate_takes_its_own_id_format(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, """
[columns]
card_id = [{ column = "pan", format = "digits:12" }, "customer"]
device_id = { column = "terminal", format = "digits:8" }
"""))
    assert mapping.apply({"pan": "", "customer": "42", "terminal": "1234"}) == {"card_id": "42", "device_id": "00001234"}
    assert mapping.apply({"pan": "123", "customer": "42"})["card_id"] == "000000000123"
    assert pickle.loads(pickle.dumps(mapping)).apply({"pan": "123"})["card_id"] == "000000000123"


def test_keep_unmapped_false_drops_other_columns_and_clashing_columns_are_skipped() -> None:
    mapping = ColumnMapping("t", {"amount": "amt"}, keep_unmapped=False)
    assert "note" not in mapping.apply({"amt": "1", "note": "x"})
    keeping = ColumnMapping("t", {"amount": "amt"})
    out = keeping.apply({"amt": "1", "amount": "999", "note": "x"})
    assert (out["amount"], out["note"]) == ("1", "x")


def test_row_builder_matches_apply() -> None:
    mapping = resolve_format("sparkov")
    assert mapping is not None
    header = list(SPARKOV_ROW)
    cells = list(SPARKOV_ROW.values())
    assert mapping.row_builder(header)(cells) == mapping.apply(dict(zip(header, cells)))


def test_mappings_survive_pickling() -> None:
    mapping = load_mapping(FIXTURES / "bank_mapping.toml")
    copy = pickle.loads(pickle.dumps(mapping))
    row = {"Ref": "B-1", "Posted": "05/01/2026 14:30:00", "Card": "4111", "Shop": "s1", "Value": "19.90"}
    assert copy == mapping and copy.apply(row) == mapping.apply(row)


# --------------------------------------------------------------------------- bad mappings


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("colums = {}\n", "unknown key 'colums' (did you mean 'columns'?)"),
        ("name = 'x'\n", "needs a [columns] table"),
        ("[columns]\namout = 'amt'\n", "unknown canonical field 'amout' (did you mean 'amount'?)"),
        ("[columns]\namount = 5\n", "[columns] amount: a column must be a non-empty string"),
        ("[columns]\namount = []\n", "[columns] amount: needs at least one column"),
        ("[columns]\namount = { column = 'a', format = 'epoch_s' }\n", "only timestamp and id columns (transaction_id,"),
        ("[columns]\namount = { column = 'a', format = 'digits:12' }\n", "only timestamp and id columns"),
        ("[columns]\ncard_id = { column = 'a', format = 'epoch_s' }\n", "[columns] card_id format: an id format must be 'digits:N'"),
        ("[columns]\ncard_id = { column = 'a', format = 'digits:0' }\n", "N from 1 to 64, got 'digits:0'"),
        ("[columns]\ncard_id = { column = 'a', format = 'digits:twelve' }\n", "an id format must be 'digits:N'"),
        ("[columns]\ncard_id = { column = 'a', format = 12 }\n", "an id format must be 'digits:N'"),
        ("[columns]\ntimestamp = { column = 'a', fromat = 'epoch_s' }\n", "unknown key 'fromat'"),
        ("[columns]\ntimestamp = { column = 'a', format = 'unix' }\n", "format: must be one of auto, rfc3339"),
        ("[columns]\n[timestamp]\nformat = 'iso'\n", "[timestamp] format: must be one of"),
        ("[columns]\n[timestamp]\ntimezone = 'Europe/Paris'\n", "fixed offset like '+05:30'"),
        ("[columns]\n[timestamp]\nzone = 'UTC'\n", "[timestamp]: unknown key 'zone'"),
        ("[columns]\n[defaults]\ntransaction_id = 'x'\n", "cannot have a default"),
        ("[columns]\n[defaults]\ncurrencies = 'EUR'\n", "[defaults]: unknown canonical field 'currencies'"),
        ("keep_unmapped = 'yes'\n[columns]\n", "'keep_unmapped' must be true or false"),
        ("[columns\n", "not valid TOML"),
    ],
)
def test_bad_mapping_files_name_the_bad_key(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert words in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_mapping_file_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="not found"):
        resolve_format(str(tmp_path / "nope.toml"))


def test_missing_required_lists_what_was_looked_for() -> None:
    mapping = resolve_format("handbook")
    assert mapping is not None
    assert mapping.missing_required(["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]) == []
    missing = mapping.missing_required(["TRANSACTION_ID", "TX_DATETIME"])
    assert missing == ["card_id (looked for 'CUSTOMER_ID')", "merchant_id (looked for 'TERMINAL_ID')", "amount (looked for 'TX_AMOUNT')"]


@pytest.mark.parametrize(("text", "minutes"), [("UTC", 0), ("z", 0), ("+00:00", 0), ("+05:30", 330), ("-0330", -210)])
def test_parse_timezone(text: str, minutes: int) -> None:
    assert parse_timezone(text) == minutes


@pytest.mark.parametrize("text", ["+24:00", "05:30", "+5:30", "CET", 60])
def test_parse_timezone_rejects_what_is_not_a_fixed_offset(text: Any) -> None:
    with pytest.raises(MappingError):
        parse_timezone(text)
