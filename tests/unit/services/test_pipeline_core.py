"""The pipeline core: raw record → Transaction, DeadLetter or DUPLICATE; verdict → alert record and scored message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fraudstream.model.features import FeatureState
from fraudstream.model.policy import Decision
from fraudstream.model.schema import parse_timestamp, to_record, validate
from fraudstream.services.pipeline.core import DUPLICATE, EventTimeWindow, Intake, alert_record, scored_message
from fraudstream.services.stores.dead_letters import DeadLetter

NOW_S = 1_780_000_000.0  # 2026-05-28: the wall clock the tests pretend it is
DAY_MS = 86_400_000


def row(n: int = 1, timestamp: Any = "2026-05-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    return {"transaction_id": f"t{n}", "timestamp": timestamp, "card_id": "c1", "merchant_id": "m1", "amount": 10.0, **fields}


def intake(**options: Any) -> Intake:
    return Intake("test", clock=lambda: NOW_S, **options)


@pytest.mark.parametrize(
    ("timestamp", "words"),
    [
        ("1970-01-01T00:00:00Z", "is before 2000-01-01T00:00:00.000Z"),
        (0, "is before 2000-01-01"),
        ("1999-12-31T23:59:59.999Z", "is before 2000-01-01"),
        ("9999-12-31T23:59:59Z", "more than 24 h ahead"),
        ("2026-05-30T00:00:00Z", "more than 24 h ahead"),
    ],
)
def test_impossible_event_times_are_dead_letters_with_a_reason(timestamp: Any, words: str) -> None:
    letter = intake().admit(7, row(timestamp=timestamp), "the raw text")
    assert type(letter) is DeadLetter
    assert (letter.source, letter.position, letter.field, letter.raw) == ("test", "7", "timestamp", "the raw text")
    assert words in letter.reason and "got " in letter.reason


def test_plausible_event_times_pass_at_the_edges_of_the_window() -> None:
    gate = intake()
    assert gate.admit(1, row(1, "2000-01-01T00:00:00Z")).transaction_id == "t1"
    now_ms = int(NOW_S * 1000)
    assert type(gate.admit(3, row(3, now_ms + DAY_MS + 1))) is DeadLetter
    assert gate.admit(2, row(2, now_ms + DAY_MS)).transaction_id == "t2"  # a day of clock skew is tolerated


def test_the_window_follows_the_newest_event_when_it_is_ahead_of_the_clock() -> None:
    gate = intake(window=EventTimeWindow(max_ahead_ms=DAY_MS))
    now_ms = int(NOW_S * 1000)
    for day in range(1, 5):  # a stream running ahead of this machine's clock, a day at a time
        assert type(gate.admit(day, row(day, now_ms + day * DAY_MS))).__name__ == "Transaction"
    assert type(gate.admit(9, row(9, now_ms + 6 * DAY_MS))) is DeadLetter  # two days past the newest


def test_the_window_is_configurable() -> None:
    earliest, _ = parse_timestamp("2026-01-01T00:00:00Z")
    gate = intake(window=EventTimeWindow(not_before_ms=earliest, max_ahead_ms=0))
    assert "is before 2026-01-01" in gate.admit(1, row(1, "2025-12-31T23:00:00Z")).reason
    assert "more than 0 h ahead" in gate.admit(2, row(2, int(NOW_S * 1000) + 1)).reason
    assert intake(window=EventTimeWindow(not_before_ms=0)).admit(3, row(3, 0)).transaction_id == "t3"
    with pytest.raises(ValueError):
        EventTimeWindow(max_ahead_ms=-1)


def test_a_retry_is_skipped_and_counted_and_a_reused_id_is_a_dead_letter() -> None:
    state = FeatureState()
    gate = Intake("test", state, clock=lambda: NOW_S)
    first = gate.admit(1, row(1))
    assert first == validate(row(1))
    assert gate.admit(2, row(1)) is DUPLICATE
    assert gate.admit(3, row(1, extra_field="delivery metadata")) is DUPLICATE
    letter = gate.admit(4, row(1, amount=11.0), "t1,...,11.0")
    assert type(letter) is DeadLetter and letter.field == "transaction_id"
    assert "already used by another transaction" in letter.reason and letter.raw == "t1,...,11.0"
    assert gate.duplicates == 2
    assert "t1" in state.cards["c1"].ids  # the memory lives in the state it was given


def test_a_dead_letter_keeps_the_text_it_was_given_or_the_record_as_json() -> None:
    gate = intake()
    assert gate.admit(1, None, b"\xff{", "not valid JSON: x").raw == "\ufffd{"
    assert gate.admit(2, None, None, None).reason == "unreadable row"
    assert gate.admit(3, row(amount=-1), lambda: "lazy text").raw == "lazy text"
    assert json.loads(gate.admit(4, row(amount=-1)).raw)["amount"] == -1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b'{"transaction_id": ', "not valid JSON"), (b"[1, 2]", "not a JSON object"), (None, "not a JSON object"),
     (b"\xff\xfe", "not valid JSON")],
)
def test_json_messages_that_are_not_objects_are_dead_letters(payload: bytes | None, reason: str) -> None:
    letter = intake().admit_json("0:12", payload)
    assert type(letter) is DeadLetter and letter.field is None and reason in letter.reason
    assert letter.position == "0:12"


def test_a_json_message_is_admitted_like_a_record() -> None:
    assert intake().admit_json("0:1", json.dumps(row(amount=0)).encode()) == validate(row(amount=0))


def test_alert_record_and_scored_message_carry_the_verdict_and_the_transaction() -> None:
    class Bundle:
        threshold, version = 0.6, "v-test"

    txn = validate(row(timestamp="2026-05-01T12:00:00+02:00", country="FR"))
    decision = Decision("t1", 0.75, True, ("big amount",))
    alert = alert_record(txn, decision, Bundle())  # type: ignore[arg-type]
    assert (alert.transaction_id, alert.score, alert.threshold, alert.reasons, alert.model_version) == (
        "t1", 0.75, 0.6, ("big amount",), "v-test",
    )
    assert alert.record == to_record(txn) and alert.timestamp_ms == txn.timestamp_ms
    message = scored_message(txn, decision, Bundle())  # type: ignore[arg-type]
    assert message == {
        "transaction_id": "t1", "timestamp": "2026-05-01T12:00:00.000+02:00", "card_id": "c1", "merchant_id": "m1",
        "amount": 10.0, "score": 0.75, "alert": True, "reasons": ["big amount"], "threshold": 0.6,
        "model_version": "v-test",
    }
