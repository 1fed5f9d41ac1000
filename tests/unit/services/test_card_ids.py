"""Card numbers never stored in clear: the Luhn rule, keyed ids, masking, the key's source, and every file path."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fraudstream.model.schema import validate
from fraudstream.services.cli import app
from fraudstream.services.pipeline.card_key import KEY_ENV, card_id_key
from fraudstream.services.pipeline.cards import (
    CardIds, CardKeyMissing, card_digits, display_form, luhn_valid, mask_card_numbers, mask_card_numbers_bytes,
)
from fraudstream.services.pipeline.core import Intake
from fraudstream.services.sources.file_source import FileSource
from fraudstream.services.sources.files import read_transactions
from fraudstream.services.stores.dead_letters import DeadLetter

FIXTURES = Path(__file__).parents[2] / "fixtures"
KEY = b"k" * 32
VISA16 = "4111111111111111"
MAESTRO12 = "630423337322"  # Maestro's 12 digits, the shortest card numbers in use
ROW = {"transaction_id": "t1", "timestamp": "2026-01-01T00:00:00Z", "merchant_id": "m", "amount": 5}


def luhn_completed(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid."""
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


def full_card_numbers(text: str) -> list[str]:
    """Every Luhn-valid run of 12 to 19 digits in ``text`` (what must never be stored)."""
    return [run for run in re.findall(r"(?<![\d.])\d{12,19}(?!\d)", text) if luhn_valid(run)]  # not a score's decimals


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(("length", "is_card"), [(11, False), (12, True), (13, True), (16, True), (19, True), (20, False)])
def test_only_luhn_valid_numbers_of_12_to_19_digits_are_card_numbers(length: int, is_card: bool) -> None:
    number = luhn_completed("4" + "1" * (length - 2))
    assert luhn_valid(number)
    assert (card_digits(number) == number) is is_card
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert card_digits(wrong) is None  # one digit off: not a card number, left as it is


@pytest.mark.parametrize("written", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"])
def test_spaces_or_dashes_between_digits_are_the_same_card(written: str) -> None:
    assert card_digits(written) == VISA16
    assert CardIds(KEY).pseudonym(written) == CardIds(KEY).pseudonym(VISA16)


@pytest.mark.parametrize("other", ["card-17", "c1", "60416207185", "630423337323", "4111111111111112", "4111--1111-1111-1111",
                                   "-4111111111111111", "４１１１１１１１１１１１１１１１", "0" * 13 + "x"])
def test_other_ids_are_left_as_they_are(other: str) -> None:
    txn = validate({**ROW, "card_id": other})
    assert CardIds(KEY).apply(txn) is txn


def test_the_display_form_keeps_at_most_the_first_six_and_last_four_digits() -> None:
    assert display_form(VISA16) == "411111******1111"
    thirteen = luhn_completed("422222222222")
    assert display_form(thirteen) == thirteen[:6] + "***" + thirteen[-4:]
    assert display_form(MAESTRO12) == "630423**7322"
    nineteen = luhn_completed("6" * 18)
    assert display_form(nineteen).count("*") == 9 and len(display_form(nineteen)) == 19


# --------------------------------------------------------------------------- keyed ids


def test_the_id_is_a_keyed_hash_stable_for_a_key_and_different_for_another() -> None:
    card_id, shown = CardIds(KEY).pseudonym(VISA16)
    assert re.fullmatch(r"card_[0-9a-f]{32}", card_id) and shown == "411111******1111"
    assert CardIds(KEY).pseudonym(VISA16)[0] == card_id
    assert CardIds(b"another key 0123456789").pseudonym(VISA16)[0] != card_id
    assert CardIds(KEY).pseudonym("5105105105105100")[0] != card_id


def test_the_same_key_gives_the_same_id_in_another_process() -> None:
    code = ("from fraudstream.services.cli.common import card_ids; "
            "print(card_ids().pseudonym('4111111111111111')[0])")
    env = {**os.environ, KEY_ENV: "a shared secret of the cluster"}
    ids = {subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
           for _ in range(2)}
    assert ids == {CardIds(b"a shared secret of the cluster").pseudonym(VISA16)[0]}


def test_the_intake_hashes_the_card_and_keeps_the_masked_form() -> None:
    txn = Intake("t", card_ids=CardIds(KEY)).admit(1, {**ROW, "card_id": VISA16})
    assert txn.card_id == CardIds(KEY).pseudonym(VISA16)[0]
    assert txn.extra["card_display"] == "411111******1111"
    again = Intake("t", card_ids=CardIds(KEY)).admit(1, {**ROW, "card_id": int(VISA16)})  # a JSON number
    assert again == txn


def test_a_12_digit_maestro_number_is_hashed_and_shown_as_first_six_and_last_four() -> None:
    txn = Intake("t", card_ids=CardIds(KEY)).admit(1, {**ROW, "card_id": MAESTRO12})
    assert re.fullmatch(r"card_[0-9a-f]{32}", txn.card_id) and txn.card_id == CardIds(KEY).pseudonym(MAESTRO12)[0]
    assert txn.extra["card_display"] == MAESTRO12[:6] + "**" + MAESTRO12[-4:] == "630423**7322"
    assert MAESTRO12 not in repr(txn)


def test_without_a_key_a_card_number_is_refused_not_kept_in_clear() -> None:
    intake = Intake("t")
    assert intake.admit(1, {**ROW, "card_id": "card-17"}).card_id == "card-17"  # no key needed for other ids
    with pytest.raises(CardKeyMissing):
        intake.admit(2, {**ROW, "transaction_id": "t2", "card_id": VISA16})


def test_the_key_comes_from_the_settings_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.services.cli.common import card_ids
    monkeypatch.setenv(KEY_ENV, "one secret of 16+ chars")
    assert card_ids().pseudonym(VISA16) == CardIds(b"one secret of 16+ chars").pseudonym(VISA16)


def test_the_key_is_the_secret_given_else_a_private_key_file_made_once(tmp_path: Path) -> None:
    assert card_id_key("0123456789abcdef") == b"0123456789abcdef"
    from fraudstream.model.errors import InputError
    with pytest.raises(InputError):
        card_id_key("short")
    path = tmp_path / "var" / "card_id.key"
    first = card_id_key(None, path)
    assert card_id_key("", path) == first and len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.decode() not in repr(CardIds(first))


# --------------------------------------------------------------------------- masking


def test_dead_letters_mask_card_numbers_in_raw_text_and_reason() -> None:
    raw = (f'{{"card_id": {VISA16}, "n": "4111 1111 1111 1111", "maestro": {MAESTRO12}, "other": 630423337323, '
           '"t": "2019-01-01 00:00:18", "unix_time": 1325376018, "zip": 28654, "amt": 107.23}')
    letter = DeadLetter("s", "1", "amount", f"bad row for {VISA16}", raw)
    assert full_card_numbers(letter.raw) == [] and full_card_numbers(letter.reason) == []
    assert "411111******1111" in letter.raw and '"maestro": 630423**7322,' in letter.raw  # 12 digits: masked too
    assert letter.raw.endswith('"other": 630423337323, "t": "2019-01-01 00:00:18", "unix_time": 1325376018, '
                               '"zip": 28654, "amt": 107.23}')  # Luhn-invalid or shorter: as they were
    assert mask_card_numbers_bytes(raw.encode()) == letter.raw.encode()
    assert mask_card_numbers("x 123 4111111111111111") == "x 123 411111******1111"  # a group inside a longer run


# --------------------------------------------------------------------------- every file path


def sparkov_with_bad_rows(tmp_path: Path) -> Path:
    """The Sparkov sample plus a row with a negative amount and an unreadable row, both with card numbers."""
    lines = (FIXTURES / "sparkov_sample.csv").read_text().splitlines()
    bad = lines[1].replace(",4.97,", ",-4.97,").replace("0b242abb623afc578575680df30655b9", "bad1")
    path = tmp_path / "sparkov.csv"
    path.write_text("\n".join([*lines, bad, '9,"2019-01-01,4111111111111111,"unclosed']) + "\n")
    return path


def sparkov_with_a_lost_leading_zero(tmp_path: Path, suffix: str = ".csv") -> Path:
    """A Sparkov file of one row whose 12-digit Maestro cc_num 060416207185 was written as the integer 60416207185."""
    header, _, maestro = (FIXTURES / "sparkov_sample.csv").read_text().splitlines()[:3]
    row = maestro.replace(",630423337322,", ",60416207185,")
    path = tmp_path / f"sparkov{suffix}"
    if suffix == ".csv":
        path.write_text(f"{header}\n{row}\n")
    else:  # JSON Lines, as a pandas export would write it: cc_num a JSON number
        record = dict(zip(*csv.reader([header, row])))
        record["cc_num"] = int(record["cc_num"])
        path.write_text(json.dumps(record) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_sparkov_cc_num_that_lost_its_leading_zero_becomes_the_12_digit_cards_id(tmp_path: Path, suffix: str) -> None:
    path = sparkov_with_a_lost_leading_zero(tmp_path, suffix)
    assert "60416207185" in path.read_text() and "060416207185" not in path.read_text()
    ids = CardIds(KEY)
    [(_, txn)] = list(read_transactions(path, "sparkov", intake=Intake(str(path), card_ids=ids)))
    assert txn.card_id == ids.pseudonym("060416207185")[0] and txn.extra["card_display"] == "060416**7185"
    # the runners' file source (run --source file --format sparkov) maps it the same way
    [row] = list(FileSource(path, "sparkov").rows())
    assert Intake(str(path), card_ids=ids).admit(row.position, row.data) == txn


def test_score_sparkov_output_and_dead_letters_hold_no_card_number(tmp_path: Path) -> None:
    runner = CliRunner()
    data, model = tmp_path / "gen.csv", tmp_path / "model"
    for args in (["generate", "--out", data, "--cards", "200", "--days", "3", "--seed", "1"],
                 ["train", "--data", data, "--model-out", model]):
        assert runner.invoke(app, [str(a) for a in args]).exit_code == 0
    sparkov = sparkov_with_bad_rows(tmp_path)
    out, letters = tmp_path / "scored.csv", tmp_path / "letters.jsonl"
    result = runner.invoke(app, [str(a) for a in ["score", "--data", sparkov, "--format", "sparkov", "--model", model,
                                                   "--out", out, "--dead-letters", letters]])
    assert result.exit_code == 0, result.output
    assert full_card_numbers(sparkov.read_text())  # the input has them...
    scored, dead = out.read_text(), letters.read_text()
    assert full_card_numbers(scored) == [] and full_card_numbers(dead) == []  # ...the outputs do not
    assert scored.count("\n") == 6 and "270318******2095" in dead and dead.count("\n") == 2


def test_run_file_source_alert_store_holds_no_card_number(tmp_path: Path) -> None:
    runner = CliRunner()
    history, stream, model = tmp_path / "history.csv", tmp_path / "stream.csv", tmp_path / "model"
    for args in (["generate", "--out", history, "--cards", "200", "--days", "3", "--seed", "1"],
                 ["train", "--data", history, "--model-out", model, "--alert-rate", "0.05"],
                 ["generate", "--out", stream, "--cards", "200", "--days", "2", "--seed", "2"]):
        assert runner.invoke(app, [str(a) for a in args]).exit_code == 0, args
    with open(stream, newline="") as handle:
        rows = list(csv.DictReader(handle))
    numbers = {card: luhn_completed(f"4{n:014d}") for n, card in enumerate(sorted({row["card_id"] for row in rows}))}
    data = tmp_path / "cards.csv"
    with open(data, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "card_id": numbers[row["card_id"]]} for row in rows)
        writer.writerow({**rows[0], "transaction_id": "bad-1", "card_id": VISA16, "amount": "-3"})
        handle.write(f"bad-2,{VISA16},unclosed\n")
    store = tmp_path / "alerts.db"
    result = runner.invoke(app, [str(a) for a in ["run", "--source", "file", "--data", data, "--model", model,
                                                   "--store", store, "--no-live-view"]])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(store) as db:
        stored = db.execute("SELECT card_id, record FROM alerts").fetchall()
        letters = [row[0] for row in db.execute("SELECT raw FROM dead_letters")]
        dump = "\n".join(db.iterdump())
    assert stored and len(letters) == 2  # alerts and dead letters were written...
    assert all(re.fullmatch(r"card_[0-9a-f]{32}", card) and '"card_display":"400000' in record.replace(" ", "")
               for card, record in stored)
    assert all("411111******1111" in raw for raw in letters)
    assert not set(numbers.values()) & set(full_card_numbers(dump)) and VISA16 not in dump  # ...none in clear
