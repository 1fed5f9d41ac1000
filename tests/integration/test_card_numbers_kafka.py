"""Card numbers through a real broker: the Kafka runner's alert store, scored topic and dead-letter topic,
and what ``fraudstream produce`` puts on the transactions topic, hold no card number in clear."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support import BIN, consume_all

from fraudstream.services.cli.common import card_ids
from fraudstream.services.kafka.producer import produce_raw
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.pipeline.cards import luhn_valid

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures"


def cli(*args: str) -> None:
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"fraudstream {' '.join(args)} failed:\n{done.stderr}"


def card_number(n: int) -> str:
    """A distinct Luhn-valid 16-digit number per ``n``."""
    body = f"4{n:014d}"
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


def full_card_numbers(data: bytes | str) -> list[str]:
    """Every Luhn-valid run of 12 to 19 digits in ``data`` (epoch milliseconds may be one: check the sent ones too)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [run for run in re.findall(r"(?<![\d.])\d{12,19}(?!\d)", text) if luhn_valid(run)]


def test_the_kafka_runner_stores_and_sends_no_card_number(kafka: str, tmp_path: Path, unique: str) -> None:
    cli("generate", "--out", str(tmp_path / "history.csv"), "--cards", "200", "--days", "4", "--seed", "5")
    cli("train", "--data", str(tmp_path / "history.csv"), "--model-out", str(tmp_path / "model"), "--alert-rate", "50")  # enough alerts to inspect, whatever the detector
    cli("generate", "--out", str(tmp_path / "stream.jsonl"), "--cards", "200", "--days", "2", "--seed", "6")
    rows = [json.loads(line) for line in (tmp_path / "stream.jsonl").read_text().splitlines()]
    numbers = {card: card_number(i) for i, card in enumerate(sorted({row["card_id"] for row in rows}))}
    messages = []
    for row in rows:  # as an outside producer would send them: card numbers in clear, as key and in the value
        row["card_id"] = numbers[row["card_id"]]
        messages.append((row["card_id"].encode(), json.dumps(row).encode()))
    pan = card_number(99_999)
    bad = [(pan.encode(), json.dumps({**rows[0], "transaction_id": "bad-1", "card_id": pan, "amount": -5}).encode()),
           (pan.encode(), f'{{"transaction_id": "bad-2", "card_id": {pan}, '.encode())]
    topic = f"cards-{unique}"
    sent = produce_raw(messages + bad, KafkaSettings(bootstrap=kafka), topic)
    assert sent.failed == 0
    store = tmp_path / "alerts.db"
    cli("run", "--source", "kafka", "--model", str(tmp_path / "model"), "--bootstrap", kafka, "--topic", topic,
        "--group", f"g-{unique}", "--scored-topic", f"{topic}.scored", "--dlq-topic", f"{topic}.dlq",
        "--store", str(store), "--state-dir", str(tmp_path / "state"), "--no-live-view", "--stop-when-idle", "4")

    with sqlite3.connect(store) as db:
        alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        letters = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        dump = "\n".join(db.iterdump())
    assert alerts > 0 and letters == 2
    sent_numbers = {*numbers.values(), pan}
    assert not sent_numbers & set(full_card_numbers(dump))
    assert "card_" in dump and f"{pan[:6]}******{pan[-4:]}" in dump

    scored = consume_all(kafka, f"{topic}.scored")
    assert len(scored) == len(rows)
    ids = card_ids()  # the tests' key, which the runner inherited: the same ids in another process
    first = json.loads(scored[0].value)
    assert first["card_id"] == ids.pseudonym(numbers_by_display(numbers, first["card_display"]))[0]
    dlq = consume_all(kafka, f"{topic}.dlq")
    assert len(dlq) == 2
    for message in [*scored, *dlq]:
        found = {*full_card_numbers(message.value), *full_card_numbers(message.key or b"")}
        found.update(number for _, value in message.headers for number in full_card_numbers(value))
        assert not sent_numbers & found
    assert pan[:6] + "******" + pan[-4:] in b"".join(m.value for m in dlq).decode()


def numbers_by_display(numbers: dict[str, str], shown: str) -> str:
    """The one card number of the workload with display form ``shown``."""
    (number,) = [n for n in numbers.values() if n[:6] + "******" + n[-4:] == shown]
    return number


def test_produce_puts_no_card_number_on_the_topic(kafka: str, unique: str) -> None:
    topic = f"sparkov-{unique}"
    cli("produce", "--data", str(FIXTURES / "sparkov_sample.csv"), "--format", "sparkov", "--topic", topic,
        "--bootstrap", kafka)
    messages = consume_all(kafka, topic)
    assert len(messages) == 5
    values = [json.loads(m.value) for m in messages]
    assert values[0]["card_id"] == card_ids().pseudonym("2703186189652095")[0]
    assert values[0]["card_display"] == "270318******2095"
    maestro = next(v for v in values if v["transaction_id"] == "1f76529f8574734946361c461b024d99")  # cc_num 630423337322
    assert (maestro["card_id"], maestro["card_display"]) == (card_ids().pseudonym("630423337322")[0], "630423**7322")
    for message in messages:
        assert full_card_numbers(message.value) == [] and full_card_numbers(message.key or b"") == []
