"""File ingest: CSV / JSON Lines / JSON (plain or gzip), presets, and bad rows to dead letters."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from fraudstream.model.schema import to_record, validate
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import Intake
from fraudstream.services.sources.files import FileFormatError, RawRow, check_file, read_rows, read_transactions
from fraudstream.services.sources.mapping import MappingError, resolve_format
from fraudstream.services.stores.dead_letters import (
    DeadLetter,
    JsonlDeadLetterSink,
    ListDeadLetterSink,
    read_dead_letters,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"


def gzipped(source: Path, folder: Path) -> Path:
    target = folder / (source.name + ".gz")
    with open(source, "rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    return target


# --------------------------------------------------------------------------- read_rows


def test_csv_rows_have_positions_none_for_empty_cells_and_the_row_text() -> None:
    rows = list(read_rows(FIXTURES / "canonical_sample.csv"))
    assert [row.position for row in rows] == [1, 2, 3, 4]
    first = rows[0]
    assert first.data is not None and first.error is None
    assert first.data["amount"] == "42.5"
    assert first.data["device_id"] is None and first.data["scenario"] is None
    assert first.raw.startswith("tx-0001,2026-01-01T08:15:30.123+00:00,card-00042,")
    # Quoted cells come back quoted, so the raw text still parses to the same cells.
    assert rows[3].raw.startswith('tx-0004,2026-01-01T10:00:00Z,"card,with,commas",m-0009,15,USD,"fast ""food"""')


def test_jsonl_rows_keep_line_numbers_and_report_unparseable_lines() -> None:
    rows = list(read_rows(FIXTURES / "bad_rows.jsonl"))
    assert [row.position for row in rows] == [1, 2, 3, 4, 6, 7, 8]  # line 5 is blank
    broken, not_object = rows[2], rows[3]
    assert broken.data is None and broken.error is not None and broken.error.startswith("not valid JSON")
    assert broken.raw == '{"transaction_id": "broken", "timestamp":'
    assert not_object == RawRow(4, None, "[1, 2, 3]", "expected a JSON object, got an array")


def test_invalid_utf8_in_a_json_line_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n{"a": 2}\n')
    rows = list(read_rows(path))
    assert [row.data for row in rows] == [None, {"a": 2}]
    assert rows[0].raw == '{"a": "\ufffd"}'


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "tx.json"
    path.write_text(json.dumps([{"transaction_id": "a"}, 5, {"transaction_id": "b"}]))
    rows = list(read_rows(path))
    assert [(row.position, row.data) for row in rows] == [(1, {"transaction_id": "a"}), (2, None), (3, {"transaction_id": "b"})]
    assert rows[1].raw == "5" and rows[0].raw == '{"transaction_id":"a"}'


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "tx.json"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert [row.data for row in read_rows(path)] == [{"a": 1}, {"a": 2}]


def test_broken_json_array_is_one_unreadable_row(tmp_path: Path) -> None:
    path = tmp_path / "tx.json"
    path.write_text('[{"a": 1}, {"a": ')
    rows = list(read_rows(path))
    assert len(rows) == 1 and rows[0].position == 0 and rows[0].data is None


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r\n")
    assert [row.data for row in read_rows(csv_path)] == [{"a": "1", "b": "2"}]
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert [row.data for row in read_rows(jsonl_path)] == [{"a": 1}]


def test_undecodable_csv_bytes_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"name,city\nx,Z\xfcrich\n")
    assert [row.data for row in read_rows(path)] == [{"name": "x", "city": "Z\ufffdrich"}]


def test_empty_files_have_no_rows(tmp_path: Path) -> None:
    for name in ("empty.csv", "empty.jsonl"):
        (tmp_path / name).write_text("")
        assert list(read_rows(tmp_path / name)) == []
        assert list(read_transactions(tmp_path / name)) == []


def test_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"\.csv, \.jsonl"):
        list(read_rows(tmp_path / "data.parquet"))


def test_duplicate_csv_columns_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("amount,amount\n1,2\n")
    with pytest.raises(FileFormatError, match="twice"):
        list(read_rows(path))


def test_oversized_csv_field_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("a,b\n1," + "x" * 200_000 + "\n3,4\n")
    rows = list(read_rows(path))
    assert [(row.position, row.data) for row in rows] == [(1, None), (2, {"a": "3", "b": "4"})]
    assert rows[0].error is not None and "field limit" in rows[0].error


# --------------------------------------------------------------------------- read_transactions


@pytest.mark.parametrize("name", ["canonical_sample.csv", "canonical_sample.jsonl"])
def test_canonical_files_read_fully(name: str) -> None:
    sink = ListDeadLetterSink()
    txns = list(read_transactions(FIXTURES / name, dead_letters=sink))
    assert sink.letters == []
    assert [position for position, _ in txns] == [1, 2, 3, 4]
    second = txns[1][1]
    assert (second.utc_offset_min, second.currency, second.is_fraud, second.extra) == (60, "EUR", 1, {"scenario": "card_testing"})
    assert txns[2][1].card_id in ("card-00043", "43")


def test_csv_and_jsonl_of_the_same_rows_agree() -> None:
    from_csv = [txn for _, txn in read_transactions(FIXTURES / "canonical_sample.csv")]
    from_jsonl = [txn for _, txn in read_transactions(FIXTURES / "canonical_sample.jsonl")]
    for csv_txn, jsonl_txn in zip(from_csv, from_jsonl, strict=True):
        csv_record, jsonl_record = to_record(csv_txn), to_record(jsonl_txn)
        for record in (csv_record, jsonl_record):
            record.pop("card_id")  # "card-00043" in one file, 43 in the other
            record["scenario"] = record.get("scenario") or None  # an empty CSV cell is None; JSON can say ""
        assert csv_record == jsonl_record


@pytest.mark.parametrize("name", ["canonical_sample.csv", "canonical_sample.jsonl", "sparkov_sample.csv"])
def test_gzip_files_read_like_plain_ones(tmp_path: Path, name: str) -> None:
    fmt = "sparkov" if name.startswith("sparkov") else "canonical"
    ids = CardIds(b"a test key for card numbers")  # Sparkov's cc_num are card numbers: they need a key
    plain = list(read_transactions(FIXTURES / name, fmt, intake=Intake(name, card_ids=ids)))
    packed = list(read_transactions(gzipped(FIXTURES / name, tmp_path), fmt, intake=Intake(name, card_ids=ids)))
    assert packed == plain and len(plain) >= 4


@pytest.mark.parametrize("suffix", [".csv.gz", ".jsonl.gz", ".json.gz"])
@pytest.mark.parametrize("reader", [read_rows, read_transactions, check_file])
def test_a_gz_file_that_is_not_gzip_is_a_clear_error_naming_the_file(tmp_path: Path, suffix: str, reader) -> None:
    path = tmp_path / f"tx{suffix}"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))  # e.g. a program saved under the wrong name
    with pytest.raises(FileFormatError) as caught:
        result = reader(path)
        if result is not None:
            list(result)
    assert str(caught.value).startswith(f"{path} is named .gz but is not gzip-compressed (it starts with b'\\x7fE')")


@pytest.mark.parametrize("reader", [read_rows, read_transactions])
def test_a_truncated_gzip_file_is_a_clear_error_naming_the_file(tmp_path: Path, reader) -> None:
    packed = gzipped(FIXTURES / "canonical_sample.csv", tmp_path).read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(packed[: len(packed) - 12])
    with pytest.raises(FileFormatError, match=f"^{path}: the gzip data is damaged"):
        list(reader(path))


def test_an_empty_gz_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv.gz"
    path.write_bytes(b"")
    assert list(read_rows(path)) == [] and list(read_transactions(path)) == []


def test_file_reads_skip_retries_and_dead_letter_reused_ids_and_impossible_times(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    path.write_text(
        "transaction_id,timestamp,card_id,merchant_id,amount\n"
        "t1,2026-01-01T00:00:00Z,c1,m1,12.5\n"
        "t1,2026-01-01T00:00:00Z,c1,m1,12.5\n"  # a retry
        "t1,2026-01-01T00:00:00Z,c1,m1,99\n"  # another transaction reusing t1
        "t2,1970-01-01T00:00:00Z,c1,m1,5\n"
        "t3,9999-01-01T00:00:00Z,c1,m1,5\n"
        "t4,2026-01-01T00:00:01Z,c1,m1,0\n"  # a card check
    )
    sink = ListDeadLetterSink()
    intake = Intake(str(path))
    got = [(position, txn.transaction_id) for position, txn in read_transactions(path, dead_letters=sink, intake=intake)]
    assert got == [(1, "t1"), (6, "t4")]
    assert intake.duplicates == 1
    assert [(letter.position, letter.field) for letter in sink.letters] == [
        ("3", "transaction_id"), ("4", "timestamp"), ("5", "timestamp"),
    ]
    assert sink.letters[0].raw == "t1,2026-01-01T00:00:00Z,c1,m1,99"


def test_bad_csv_rows_go_to_dead_letters_and_good_rows_come_through() -> None:
    path = FIXTURES / "bad_rows.csv"
    sink = ListDeadLetterSink()
    txns = list(read_transactions(path, dead_letters=sink))
    assert [(position, txn.transaction_id) for position, txn in txns] == [(1, "ok-1"), (4, "ok-2"), (9, "ok-3")]
    letters = {letter.position: letter for letter in sink.letters}
    assert {position: letter.field for position, letter in letters.items()} == {
        "2": "amount",
        "3": "timestamp",
        "5": None,
        "6": "currency",
        "7": "transaction_id",
        "8": "is_fraud",
    }
    assert letters["2"].reason == "must be 0 or more, got -5.0"
    assert "no UTC offset" in letters["3"].reason
    assert letters["5"].reason == "expected 8 columns, got 3" and letters["5"].raw == "too,few,columns"
    assert letters["8"].raw == "bad-fraud,2026-01-01T00:00:06Z,c1,m1,10.0,USD,US,2"
    assert all(letter.source == str(path) for letter in sink.letters)
    assert sink.counts_by_field()["<record>"] == 1


def test_bad_jsonl_rows_go_to_dead_letters_with_line_numbers() -> None:
    sink = ListDeadLetterSink()
    txns = list(read_transactions(FIXTURES / "bad_rows.jsonl", dead_letters=sink))
    assert [txn.transaction_id for _, txn in txns] == ["ok-1", "ok-2", "ok-3"]
    assert [(letter.position, letter.field) for letter in sink.letters] == [
        ("2", "amount"),
        ("3", None),
        ("4", None),
        ("7", "card_lat"),
    ]
    assert sink.letters[0].raw.startswith('{"transaction_id": "bad-amount"')


def test_without_a_sink_bad_rows_are_skipped() -> None:
    assert len(list(read_transactions(FIXTURES / "bad_rows.csv"))) == 3


def test_sparkov_preset_on_its_sample() -> None:
    sink = ListDeadLetterSink()
    intake = Intake("sparkov", card_ids=CardIds(b"a test key for card numbers"))
    txns = [txn for _, txn in read_transactions(FIXTURES / "sparkov_sample.csv", "sparkov", sink, intake)]
    assert sink.letters == [] and len(txns) == 5
    first = txns[0]
    assert (first.transaction_id, first.amount) == ("0b242abb623afc578575680df30655b9", 4.97)
    # cc_num 2703186189652095 is a card number: a keyed id, shown masked, never kept in clear
    assert first.card_id.startswith("card_") and first.extra["card_display"] == "270318******2095"
    # cc_num 630423337322 is a 12-digit Maestro number: a card number too (12 to 19 digits)
    assert txns[1].card_id == intake.card_ids.pseudonym("630423337322")[0] and txns[1].extra["card_display"] == "630423**7322"
    assert first.merchant_id == "fraud_Rippin, Kub and Mann"
    assert first.extra["job"] == "Psychologist, counselling"
    assert "" not in first.extra and "unix_time" not in first.extra
    assert txns[3].timestamp_ms == 1_325_376_076_000  # no trans_date_trans_time: unix_time, in seconds
    assert [txn.is_fraud for txn in txns] == [0, 0, 0, 0, 1]


def test_handbook_preset_on_its_sample() -> None:
    txns = [txn for _, txn in read_transactions(FIXTURES / "handbook_sample.csv", "handbook")]
    assert [(txn.transaction_id, txn.card_id, txn.merchant_id) for txn in txns][:2] == [("0", "596", "3156"), ("1", "4961", "3412")]
    assert txns[0].timestamp_ms == 1_522_540_831_000  # 2018-04-01 00:00:31 UTC
    assert txns[4].is_fraud == 1 and txns[4].extra["TX_FRAUD_SCENARIO"] == "1"


@pytest.mark.parametrize(("name", "fmt"), [
    ("sparkov_sample.csv", "sparkov"),
    ("handbook_sample.csv", "handbook"),
    ("bank_export.csv", str(FIXTURES / "bank_mapping.toml")),
    ("canonical_sample.csv", "canonical"),
])
def test_read_transactions_matches_read_rows_then_mapping_then_validate(name: str, fmt: str) -> None:
    """The fast CSV path and the generic path a runner source takes give the same transactions."""
    mapping = resolve_format(fmt)
    ids = CardIds(b"a test key for card numbers")
    pseudonymise = ids.apply  # what the pipeline core does to card numbers after validation
    slow = []
    for row in read_rows(FIXTURES / name):
        assert row.data is not None
        try:
            slow.append((row.position, pseudonymise(validate(row.data if mapping is None else mapping.apply(row.data)))))
        except ValueError:
            pass
    assert list(read_transactions(FIXTURES / name, fmt, intake=Intake(str(FIXTURES / name), card_ids=ids))) == slow


def test_user_mapping_file_with_a_bad_row() -> None:
    sink = ListDeadLetterSink()
    txns = [txn for _, txn in read_transactions(FIXTURES / "bank_export.csv", str(FIXTURES / "bank_mapping.toml"), sink)]
    assert [txn.transaction_id for txn in txns] == ["B-1", "B-2"]
    assert [txn.currency for txn in txns] == ["EUR", "EUR"]
    assert [(letter.position, letter.field) for letter in sink.letters] == [("3", "timestamp")]


def test_csv_without_a_required_column_fails_up_front(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("transaction_id,timestamp,card_id,amount\nt1,2026-01-01T00:00:00Z,c1,5\n")
    with pytest.raises(MappingError, match="merchant_id"):
        list(read_transactions(path))
    with pytest.raises(MappingError, match="looked for 'trans_num'"):
        list(read_transactions(FIXTURES / "handbook_sample.csv", "sparkov"))


def test_dead_letters_reach_a_jsonl_file_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "letters" / "bad.jsonl"
    with JsonlDeadLetterSink(out) as sink:
        list(read_transactions(FIXTURES / "bad_rows.csv", dead_letters=sink))
        assert sink.count == 6
    letters = list(read_dead_letters(out))
    assert [letter.position for letter in letters] == ["2", "3", "5", "6", "7", "8"]
    first = json.loads(out.read_text().splitlines()[0])
    assert first["key"] == f"{FIXTURES / 'bad_rows.csv'}#2" and first["field"] == "amount"


def test_dead_letter_raw_is_cut_to_64_kib_and_keys_are_stable() -> None:
    letter = DeadLetter("kafka:transactions:0", "3:1200", None, "not JSON", "é" * 100_000)
    assert len(letter.raw.encode("utf-8")) <= 64 * 1024
    assert letter.raw == "é" * (32 * 1024)
    assert letter.key() == "kafka:transactions:0#3:1200"
