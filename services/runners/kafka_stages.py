"""The Kafka runner's two stages: card features where the card's partition is, merchant features where the merchant's is.

Transactions arrive keyed by card, so a card's history lives in one partition — but a merchant's traffic
is spread over all of them, and training computes merchant features over all of it. So the pipeline is
split in two, the Kafka Streams way:

- the **card stage** (one per partition of the source topic) admits each message (contract, event-time
  window, duplicate ids: :class:`~fraudstream.services.pipeline.core.Intake`), computes the card half of
  the features (:func:`~fraudstream.model.features.step.card_step`) and forwards the transaction with
  them to the *by-merchant* topic, keyed by merchant; after each batch it tells every by-merchant
  partition how far it has got (a :class:`Mark`), and when it has had nothing to read for a while it
  says so (:class:`Idle`);
- the **merchant stage** (one per partition of the by-merchant topic) puts the forwarded transactions of
  all card partitions back in one order (:class:`~fraudstream.services.pipeline.merge.OrderedMerge`),
  computes the merchant half (:func:`~fraudstream.model.features.step.merchant_step`), scores the joined
  row and builds the alerts and scored messages.

**The order.** Every forwarded transaction carries an order key. Messages sent by ``fraudstream
produce`` carry their position in the file (header ``fraudstream.order``: ``<run>:<row>``), so a file
replayed through Kafka is merged back into file order, exactly as ``fraudstream score`` reads it — any
number of partitions, any number of runners, rows in order or not. Messages from other producers are
merged in event-time order (ties by source partition and offset); on input that is in event-time order
that is again what ``score`` computes. A transaction that reaches the merge after it has released later
ones (its card partition was out of order, or idle and woke up with older events) is *late*: it is
taken where it arrives and counted (``late`` in the statistics).

**Exactly once in effect.** Both stages are deterministic functions of their input partition in offset
order, snapshotted and replayed like before. The card stage may forward a message twice (a crash after
sending, before committing the source offset); the merchant stage drops what it has already seen from
that source offset (a source's messages reach a by-merchant partition in offset order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.step import CardHandover
from fraudstream.model.schema import Transaction
from fraudstream.model.scoring import Scorer
from fraudstream.services.kafka.producer import ORDER_HEADER
from fraudstream.services.pipeline.cards import mask_card_numbers_bytes
from fraudstream.services.pipeline.core import DUPLICATE, Intake, alert_record, scored_message
from fraudstream.services.pipeline.merge import OrderedMerge
from fraudstream.services.stores.dead_letters import RECORD_LEVEL, DeadLetter

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle
    from fraudstream.services.stores.alerts.base import Alert

Send = tuple[str, bytes | None, bytes, list[tuple[str, bytes]], int | None]  # topic, key, value, headers, partition


class Forwarded(msgspec.Struct, array_like=True, tag="f"):
    """A transaction on its way from its card's partition to its merchant's."""

    order: tuple[int, int, int, int]
    source: int  # the source partition
    offset: int  # and offset it came from
    txn: Transaction
    card: list[float]  # the card half of its features
    new_to_merchant: bool  # the hand-over (CardHandover)
    key: bytes | None  # the scored message's key
    produced_ms: int | None  # the source message's timestamp, for end-to-end latency


class Mark(msgspec.Struct, array_like=True, tag="m"):
    """Card partition ``source`` has forwarded everything up to ``order`` (source offsets up to ``offset``)."""

    source: int
    order: tuple[int, int, int, int]
    offset: int


class Idle(msgspec.Struct, array_like=True, tag="i"):
    """Card partition ``source`` has been read to ``end`` and had nothing new for a while."""

    source: int
    end: int


StageMessage = Forwarded | Mark | Idle
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(StageMessage).decode


def encode_stage_message(message: StageMessage) -> bytes:
    """The bytes of a message between the stages (msgpack: floats travel exactly)."""
    return _encode(message)


def order_key(headers: list[tuple[str, bytes]] | None, txn: Transaction, partition: int, offset: int) -> tuple[int, int, int, int]:
    """The order a transaction is merged in: its file position when the producer gave one, else its event time."""
    for name, value in headers or ():
        if name == ORDER_HEADER and value:
            try:
                run, row = value.split(b":")
                return (int(run), int(row), partition, offset)
            except ValueError:
                break  # a foreign header of that name: fall back to event time
    return (txn.timestamp_ms, 0, partition, offset)


@dataclass
class Outputs:
    """What one batch sends: alerts and dead letters for the store, messages for the topics."""

    alerts: list[Alert] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    messages: list[Send] = field(default_factory=list)
    produced_ms: list[int] = field(default_factory=list)  # source timestamps of what reached a final sink
    counts: dict[str, int] = field(default_factory=lambda: {"read": 0, "scored": 0, "duplicates": 0, "late": 0})


@dataclass(frozen=True)
class StageTopics:
    """Where the stages send: the by-merchant topic (and its partition count), scored and dead-letter topics."""

    by_merchant: str
    merchant_partitions: int
    scored: str
    dead_letters: str


class CardStage:
    """One source partition: admits, computes the card half, forwards by merchant (see the module docstring)."""

    def __init__(self, topic: str, partition: int, topics: StageTopics, intake_factory: Callable[[FeatureState], Intake],
                 ttl_ms: int | None = None) -> None:
        self.topic, self.partition, self.topics = topic, partition, topics
        self.state = FeatureState(ttl_ms)
        self.intake = intake_factory(self.state)
        self._intake_factory = intake_factory

    def process(self, records: list[Any], replay_until: int, out: Outputs) -> None:
        """Admit ``records`` (one partition, offset order); those below ``replay_until`` only rebuild state."""
        admit, card_features = self.intake.admit_json, self.state.card_features
        by_merchant, p = self.topics.by_merchant, self.partition
        last: Forwarded | None = None
        for rec in records:
            outcome = admit(f"{p}:{rec.offset}", rec.value)
            if rec.offset < replay_until:  # already forwarded before a restart: rebuild the card state only
                if type(outcome) is Transaction:
                    card_features(outcome)
                continue
            out.counts["read"] += 1
            if type(outcome) is Transaction:
                txn: Transaction = outcome
                features, handover = card_features(txn)
                order = order_key(rec.headers, txn, p, rec.offset)
                forwarded = Forwarded(order, p, rec.offset, txn, list(features), handover.new_to_merchant,
                                      _scored_key(rec.key, txn), rec.timestamp)
                out.messages.append((by_merchant, txn.merchant_id.encode(), _encode(forwarded), [], None))
                if last is None or order > last.order:
                    last = forwarded
            elif outcome is DUPLICATE:
                out.counts["duplicates"] += 1
            else:
                self._dead_letter(outcome, rec, out)  # type: ignore[arg-type]
        if last is not None:  # every merchant partition learns how far this card partition has got
            mark = _encode(Mark(p, last.order, records[-1].offset))
            out.messages.extend((by_merchant, None, mark, [], q) for q in range(self.topics.merchant_partitions))

    def idle_messages(self, end: int) -> list[Send]:
        """What tells every merchant partition that this card partition is read to ``end`` and quiet."""
        idle = _encode(Idle(self.partition, end))
        return [(self.topics.by_merchant, None, idle, [], q) for q in range(self.topics.merchant_partitions)]

    def _dead_letter(self, letter: DeadLetter, rec: Any, out: Outputs) -> None:
        out.letters.append(letter)
        headers = [
            ("error.field", (letter.field or RECORD_LEVEL).encode()),
            ("error.reason", letter.reason.encode()),
            ("source.topic", self.topic.encode()),
            ("source.partition", str(self.partition).encode()),
            ("source.offset", str(rec.offset).encode()),
        ]
        # The message as received, card numbers masked in key, value and headers (the letter's reason already is).
        out.messages.append((self.topics.dead_letters, mask_card_numbers_bytes(rec.key or b"") or rec.key,
                             mask_card_numbers_bytes(rec.value or b""),
                             [(k, mask_card_numbers_bytes(v) if v else v) for k, v in rec.headers or []] + headers, None))
        out.produced_ms.append(rec.timestamp)

    def snapshot(self) -> dict[str, Any]:
        return {"cards": self.state.snapshot()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.state.restore(snapshot["cards"])
        self.intake = self._intake_factory(self.state)  # its "newest event" comes from the restored state


class MerchantStage:
    """One by-merchant partition: merges the card partitions back in order, computes the merchant half, scores."""

    def __init__(self, bundle: ModelBundle, sources: int, topics: StageTopics, ttl_ms: int | None = None) -> None:
        self.bundle, self.topics = bundle, topics
        self.state = FeatureState(ttl_ms)
        self.scorer = Scorer(bundle, self.state)
        self.merge: OrderedMerge[Forwarded] = OrderedMerge(sources)
        self.seen = [-1] * sources  # per source partition: the newest source offset forwarded here
        self.marked = [-1] * sources  # and covered by a mark
        self._encode_scored = msgspec.json.Encoder().encode

    @property
    def pending(self) -> int:
        """Transactions held back until the slower card partitions catch up."""
        return self.merge.pending

    def process(self, records: list[Any], replay_until: int, out: Outputs) -> None:
        """Merge ``records`` (one partition, offset order); what is released by a record below ``replay_until``
        only moves the merchant state (its results reached the sinks before a restart)."""
        merge, merchant_features = self.merge, self.state.merchant_features
        txns: list[Transaction] = []
        rows: list[list[float]] = []
        keys: list[bytes | None] = []
        late = merge.late
        for rec in records:
            try:
                message = _decode(rec.value)
            except (msgspec.DecodeError, TypeError):  # not written by a card stage: nothing to merge
                continue
            released = self._take(message)
            if rec.offset < replay_until:
                for f in released:
                    merchant_features(f.txn, CardHandover(f.new_to_merchant))
                continue
            for f in released:
                rows.append(f.card + list(merchant_features(f.txn, CardHandover(f.new_to_merchant))))
                txns.append(f.txn)
                keys.append(f.key)
                out.produced_ms.append(f.produced_ms)  # type: ignore[arg-type]
        out.counts["late"] += merge.late - late
        if not txns:
            return
        X = np.array(rows, dtype=np.float64)
        bundle, scored = self.bundle, self.topics.scored
        for txn, key, d in zip(txns, keys, self.scorer.decide_rows(txns, X)):
            out.messages.append((scored, key, self._encode_scored(scored_message(txn, d, bundle)), [], None))
            if d.alert:
                out.alerts.append(alert_record(txn, d, bundle))
        out.counts["scored"] += len(txns)

    def _take(self, message: StageMessage) -> list[Forwarded]:
        source = message.source
        if source >= self.merge.sources:
            return []  # a card partition added after this stage started: not merged (restart the runners)
        if type(message) is Forwarded:
            if message.offset <= self.seen[source]:
                return []  # forwarded again after a card stage restarted: already merged
            self.seen[source] = message.offset
            return self.merge.add(source, message.order, message)
        if type(message) is Mark:
            if message.offset <= self.marked[source]:
                return []
            self.marked[source] = message.offset
            return self.merge.watermark(source, message.order)
        if message.end > self.seen[source] and message.end > self.marked[source]:  # Idle, and nothing newer came
            return self.merge.idle(source)
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"merchants": self.state.snapshot(), "merge": self.merge.snapshot(_encode),
                "seen": list(self.seen), "marked": list(self.marked)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.state.restore(snapshot["merchants"])
        self.merge.restore(snapshot["merge"], _decode)
        self.seen, self.marked = list(snapshot["seen"]), list(snapshot["marked"])


def _scored_key(key: bytes | None, txn: Transaction) -> bytes | None:
    """The scored message's key: the input's, unless it holds a card number (then the card's keyed id)."""
    if key is not None and len(key) >= 13 and key[-1:].isdigit() and mask_card_numbers_bytes(key) != key:
        return txn.card_id.encode()
    return key
