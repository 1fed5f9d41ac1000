"""The middle of every runtime, written once: a raw record becomes a Transaction or a DeadLetter, and a
verdict becomes an alert record and a scored message.

The runners, the producer and the file reader (and next the API and Spark) call this module, so a
record is judged the same way whatever carries it: the data contract (:func:`validate`), a
plausible event-time window, and duplicate transaction ids (a retry is skipped and counted, a
reused id is a dead letter). The window needs a wall clock, which this module reads; the model core
never does. A card number used as ``card_id`` leaves here as a keyed id plus a masked display form, and
raw text kept in dead letters has its card numbers masked (see :mod:`fraudstream.services.pipeline.cards`).

>>> intake = Intake("demo", clock=lambda: 1767225600.0)
>>> row = {"transaction_id": "t1", "timestamp": "2026-01-01T00:00:00Z", "card_id": "c", "merchant_id": "m", "amount": 0}
>>> intake.admit(1, row).amount, intake.admit(2, row) is DUPLICATE
(0.0, True)
>>> letter = intake.admit(3, {**row, "transaction_id": "t2", "timestamp": "1970-01-01T00:00:00Z"})
>>> letter.field, letter.reason
('timestamp', 'is before 2000-01-01T00:00:00.000Z, the earliest accepted event time, got 1970-01-01T00:00:00.000Z')
>>> intake.admit(4, {**row, "amount": 9}).reason
'was already used by another transaction of this card (same id, different content)'
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Union

import msgspec

from fraudstream.model.features.ids import CONFLICT, NEW
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore
from fraudstream.model.features.state import DAY_MS, HOUR_MS
from fraudstream.model.schema import InvalidTransaction, Transaction, format_timestamp, to_record, validate
from fraudstream.services.pipeline.cards import CARD_DISPLAY, CardIds
from fraudstream.services.stores.alerts.base import Alert
from fraudstream.services.stores.dead_letters import DeadLetter

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle
    from fraudstream.model.policy import Decision

__all__ = [
    "DUPLICATE", "EventTimeWindow", "Intake", "Outcome", "RawText",
    "alert_record", "scored_message", "unreadable",
]

NOT_BEFORE_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_AHEAD_MS = DAY_MS


class _Duplicate:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DUPLICATE"


DUPLICATE: Final = _Duplicate()  # a retry of a transaction already admitted: skip it, count it
Outcome = Union[Transaction, DeadLetter, _Duplicate]
RawText = Union[str, bytes, Callable[[], str], None]  # a callable is only called for a dead letter


@dataclass(frozen=True)
class EventTimeWindow:
    """Event times a record may carry: not before ``not_before_ms``, and at most ``max_ahead_ms`` after the
    newest event admitted or the wall clock, whichever is later (a clock-skewed source is tolerated; 9999 is not)."""

    not_before_ms: int = NOT_BEFORE_MS
    max_ahead_ms: int = MAX_AHEAD_MS

    def __post_init__(self) -> None:
        if self.max_ahead_ms < 0:
            raise ValueError(f"max_ahead_ms must be 0 or more, got {self.max_ahead_ms}")


def unreadable(source: str, position: int | str, raw: RawText, error: str | None) -> DeadLetter:
    """The dead letter for a record that could not even be parsed."""
    return DeadLetter(source, str(position), None, error or "unreadable row", _text(raw, None))


class Intake:
    """Admits raw records of one source into one feature state: contract, event-time window, duplicate ids.

    ``state`` holds the per-card memory of recent ids (see :mod:`fraudstream.model.features.ids`), so it
    must be the state the transactions are then scored with (or, for a batch read, a state of its own):
    that is what makes the memory checkpointed, restored and partitioned with the features.
    """

    def __init__(
        self,
        source: str,
        state: StateStore | None = None,
        *,
        window: EventTimeWindow | None = None,
        clock: Callable[[], float] = time.time,
        card_ids: CardIds | None = None,
    ) -> None:
        self.source = source
        # Without one, a card number is refused (CardKeyMissing) rather than kept in clear; the edges
        # pass the configured one (services.pipeline.card_key.card_ids), shared by all their intakes.
        self.card_ids = card_ids if card_ids is not None else CardIds(None)
        self._pseudonymise = self.card_ids.apply
        self.state: StateStore = state if state is not None else FeatureState()
        self.window = window if window is not None else EventTimeWindow()
        self.clock = clock
        # The newest event already in the state (after a restore): the window's "newest event seen".
        self.newest_ms = self.state.newest_ms
        self.duplicates = 0  # retries seen (the runners count their own, with their commits)
        self._limit_ms = -1  # events up to here pass without reading the clock; recomputed when exceeded
        self._decode = msgspec.json.Decoder().decode

    def admit(self, position: int | str, data: Mapping[str, Any] | None, raw: RawText = None,
              error: str | None = None) -> Outcome:
        """``data`` (a parsed record, None if unparseable) as a new :class:`Transaction`, a :class:`DeadLetter`
        with its reason, or :data:`DUPLICATE`. ``raw`` is the record's text, kept in dead letters."""
        if data is None:
            return unreadable(self.source, position, raw, error)
        try:
            txn = self._pseudonymise(validate(data))
        except InvalidTransaction as invalid:
            return DeadLetter(self.source, str(position), invalid.field, invalid.reason, _text(raw, data))
        t = txn.timestamp_ms
        if t > self._limit_ms or t < self.window.not_before_ms:
            reason = self._outside_window(t)
            if reason is not None:
                return DeadLetter(self.source, str(position), "timestamp", reason, _text(raw, data))
        seen = self.state.remember_id(txn)
        if seen == NEW:
            if self.newest_ms is None or t > self.newest_ms:
                self.newest_ms = t
                if t + self.window.max_ahead_ms > self._limit_ms:
                    self._limit_ms = t + self.window.max_ahead_ms
            return txn
        if seen == CONFLICT:
            return DeadLetter(self.source, str(position), "transaction_id",
                              "was already used by another transaction of this card (same id, different content)",
                              _text(raw, data))
        self.duplicates += 1
        return DUPLICATE

    def admit_json(self, position: int | str, payload: bytes | None) -> Outcome:
        """:meth:`admit` for a JSON message (Kafka, the API): anything but a JSON object is a dead letter."""
        try:
            data = self._decode(payload) if payload is not None else None
        except (msgspec.DecodeError, UnicodeDecodeError) as decode_error:
            return unreadable(self.source, position, payload, f"not valid JSON: {decode_error}")
        if type(data) is not dict:
            return unreadable(self.source, position, payload, "the message is not a JSON object")
        return self.admit(position, data, payload)

    def _outside_window(self, t: int) -> str | None:
        window = self.window
        if t < window.not_before_ms:
            return (f"is before {format_timestamp(window.not_before_ms)}, the earliest accepted event time, "
                    f"got {format_timestamp(t)}")
        now_ms = int(self.clock() * 1000)
        reference = now_ms if self.newest_ms is None or now_ms > self.newest_ms else self.newest_ms
        self._limit_ms = reference + window.max_ahead_ms
        if t <= self._limit_ms:
            return None
        ahead = window.max_ahead_ms / HOUR_MS
        return (f"is more than {ahead:g} h ahead of the newest event and the clock ({format_timestamp(reference)}), "
                f"got {format_timestamp(t)}")


def _text(raw: RawText, data: Mapping[str, Any] | None) -> str:
    if raw is None:
        return json.dumps(data, default=str, ensure_ascii=False) if data is not None else ""
    if type(raw) is str:
        return raw
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", "replace")
    return raw()  # type: ignore[operator,no-any-return]


# --------------------------------------------------------------------------- verdicts


def alert_record(txn: Transaction, decision: Decision, bundle: ModelBundle) -> Alert:
    """What the alert store keeps for an alert: the verdict and the transaction as admitted (card numbers
    already replaced by their keyed id, with ``card_display`` in the record)."""
    return Alert(
        transaction_id=txn.transaction_id,
        timestamp_ms=txn.timestamp_ms,
        card_id=txn.card_id,
        merchant_id=txn.merchant_id,
        amount=txn.amount,
        score=decision.score,
        threshold=bundle.threshold,
        reasons=decision.reasons,
        model_version=bundle.version,
        record=to_record(txn),
    )


def scored_message(txn: Transaction, decision: Decision, bundle: ModelBundle) -> dict[str, Any]:
    """The verdict every transaction gets on the scored topic (alert or not); ``card_display`` only for card numbers."""
    message = {
        "transaction_id": txn.transaction_id,
        "timestamp": format_timestamp(txn.timestamp_ms, txn.utc_offset_min),
        "card_id": txn.card_id,
        "merchant_id": txn.merchant_id,
        "amount": txn.amount,
        "score": decision.score,
        "alert": decision.alert,
        "reasons": list(decision.reasons),
        "threshold": bundle.threshold,
        "model_version": bundle.version,
    }
    shown = txn.extra.get(CARD_DISPLAY) if txn.extra else None
    if shown is not None:
        message[CARD_DISPLAY] = shown
    return message
