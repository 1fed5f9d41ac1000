"""The Kafka runner's two stages without a broker: card partitions → by-merchant partitions → verdicts.

Records are routed between the stages the way Kafka would (murmur2 of the key, or the partition a message
names), in random batches and random interleavings of the partitions; whatever the interleaving and the
number of partitions, the verdicts must be those of one scorer reading the file in order (what
``fraudstream score`` does). The broker-backed version of this is tests/integration/test_kafka_pipeline.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from fraudstream.model.bundle import ModelBundle
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.schema import Transaction, validate
from fraudstream.model.scoring import Scorer
from fraudstream.model.train import feature_matrix, train_bundle
from fraudstream.services.kafka.partitioning import partition_for
from fraudstream.services.kafka.producer import ORDER_HEADER, encode_row
from fraudstream.services.pipeline.core import Intake
from fraudstream.services.runners.kafka_stages import CardStage, MerchantStage, Outputs, StageMessage, StageTopics
from fraudstream.services.sources.generator import GeneratorConfig, generate

TOPICS = dict(by_merchant="by-merchant", scored="scored", dead_letters="dlq")


@dataclass
class Record:
    """What a Kafka consumer record offers the stages."""

    offset: int
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 0


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return list(generate(GeneratorConfig(cards=300, days=4, seed=5)))


@pytest.fixture(scope="module")
def bundle(history: list[dict[str, Any]]) -> ModelBundle:
    return train_bundle(feature_matrix([validate(r) for r in history]), created_at="test")


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return list(generate(GeneratorConfig(cards=400, days=3, seed=6)))


def messy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Retries, ids reused by other transactions, and rows late by up to a dozen places."""
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        out.append(row)
        if i % 29 == 3:
            out.append(dict(row))
        if i % 31 == 5:
            out.append({**row, "amount": row["amount"] + 17.25})
    for start in range(0, len(out) - 12, 40):
        out[start : start + 12] = out[start : start + 12][::-1]
    return out


def oracle(bundle: ModelBundle, rows: list[dict[str, Any]]) -> dict[str, float]:
    """``fraudstream score``: one intake and one scorer over the rows in file order; alerts by id."""
    state = FeatureState()
    intake = Intake("file", state)
    txns = [t for i, r in enumerate(rows) if type(t := intake.admit_json(i, msgspec.json.encode(r))) is Transaction]
    return {d.transaction_id: d.score for d in Scorer(bundle, state).decide_batch(txns) if d.alert}


def produce(rows: list[dict[str, Any]], partitions: int, header: bool) -> list[list[Record]]:
    """The rows as ``fraudstream produce`` sends them: keyed by card, with their file position (or without)."""
    topic: list[list[Record]] = [[] for _ in range(partitions)]
    for i, row in enumerate(rows):
        key, value = encode_row(row)
        p = partition_for(key.decode(), partitions)  # type: ignore[union-attr]
        headers = [(ORDER_HEADER, f"7:{i}".encode())] if header else []
        topic[p].append(Record(len(topic[p]), value, key, headers))
    return topic


def alerts_of(outputs: list[Outputs]) -> dict[str, float]:
    return {a.transaction_id: a.score for out in outputs for a in out.alerts}


def pipeline(bundle: ModelBundle, source: list[list[Record]], merchant_partitions: int, rng: random.Random) -> tuple[list[Outputs], list[MerchantStage]]:
    """Run both stages over ``source`` with random batches and interleavings; the Idle messages at the end."""
    topics = StageTopics(merchant_partitions=merchant_partitions, **TOPICS)
    cards = [CardStage("tx", p, topics, lambda state: Intake("kafka", state)) for p in range(len(source))]
    merchants = [MerchantStage(bundle, len(source), topics) for _ in range(merchant_partitions)]
    by_merchant: list[list[Record]] = [[] for _ in range(merchant_partitions)]
    read = [0] * len(source)
    merged = [0] * merchant_partitions
    outputs: list[Outputs] = []

    def route(out: Outputs) -> None:
        for topic, key, value, _, partition in out.messages:
            if topic == topics.by_merchant:
                q = partition if partition is not None else partition_for(key.decode(), merchant_partitions)  # type: ignore[union-attr]
                by_merchant[q].append(Record(len(by_merchant[q]), value, key))

    def merchant_step(q: int) -> None:
        batch = by_merchant[q][merged[q] : merged[q] + rng.randint(1, 60)]
        if batch:
            out = Outputs()
            merchants[q].process(batch, 0, out)
            merged[q] += len(batch)
            outputs.append(out)

    while any(read[p] < len(source[p]) for p in range(len(source))):
        p = rng.choice([p for p in range(len(source)) if read[p] < len(source[p])])
        batch = source[p][read[p] : read[p] + rng.randint(1, 80)]
        out = Outputs()
        cards[p].process(batch, 0, out)
        read[p] += len(batch)
        route(out)
        outputs.append(out)
        merchant_step(rng.randrange(merchant_partitions))
    for p, card in enumerate(cards):
        route(Outputs(messages=card.idle_messages(len(source[p]))))
    for q in range(merchant_partitions):
        while merged[q] < len(by_merchant[q]):
            merchant_step(q)
    return outputs, merchants


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_any_partitioning_and_interleaving_gives_the_alerts_of_one_scorer_over_the_file(bundle, stream, partitions) -> None:
    expected = oracle(bundle, stream)
    assert len(expected) > 5
    for seed in range(3):
        outputs, merchants = pipeline(bundle, produce(stream, partitions, header=False), partitions, random.Random(seed))
        assert alerts_of(outputs) == expected
        assert sum(out.counts["scored"] for out in outputs) == len(stream)
        assert all(m.pending == 0 for m in merchants) and sum(m.merge.late for m in merchants) == 0


def test_a_replayed_file_out_of_order_is_merged_back_in_file_order(bundle, stream) -> None:
    """With the producer's file positions, disorder, retries and reused ids come out as ``score`` reads the file;
    without them the merge follows event time and the disordered rows are handled differently."""
    rows = messy(stream)
    expected = oracle(bundle, rows)
    outputs, _ = pipeline(bundle, produce(rows, 4, header=True), 3, random.Random(1))
    assert alerts_of(outputs) == expected
    counts = {name: sum(out.counts[name] for out in outputs) for name in ("scored", "duplicates", "late")}
    assert counts["duplicates"] == sum(1 for i in range(len(stream)) if i % 29 == 3)
    assert counts["late"] == 0
    assert len(sum((out.letters for out in outputs), [])) == sum(1 for i in range(len(stream)) if i % 31 == 5)


def test_without_the_merge_merchant_features_depend_on_the_partitioning(bundle, stream) -> None:
    """The skew this design removes: merchant state per card partition (the old runner) changes the alerts."""
    expected = oracle(bundle, stream)
    per_partition = [Scorer(bundle) for _ in range(4)]
    groups: dict[int, list[Transaction]] = {}
    for row in stream:
        txn = validate(row)
        groups.setdefault(partition_for(txn.card_id, 4), []).append(txn)
    skewed = {d.transaction_id: d.score for p, txns in groups.items() for d in per_partition[p].decide_batch(txns) if d.alert}
    assert skewed != expected


def test_a_merchant_stage_restored_from_a_snapshot_and_replayed_writes_what_an_uninterrupted_one_writes(bundle, stream) -> None:
    """Crash safety: results of records below the committed offset are in the sinks; the new owner restores the
    snapshot, replays up to the committed offset without writing, and carries on."""
    source = produce(stream, 3, header=True)
    topics = StageTopics(merchant_partitions=1, **TOPICS)
    records: list[Record] = []
    for p, partition in enumerate(source):  # card stages first; their outputs are then interleaved at random
        out = Outputs()
        CardStage("tx", p, topics, lambda state: Intake("kafka", state)).process(partition, 0, out)
        records.extend(Record(0, value) for topic, _, value, _, _ in out.messages if topic == topics.by_merchant)
    rng = random.Random(3)
    decode = msgspec.msgpack.Decoder(StageMessage).decode
    by_source: dict[int, list[Record]] = {}
    for r in records:
        by_source.setdefault(decode(r.value).source, []).append(r)
    merged: list[Record] = []
    cursors = dict.fromkeys(by_source, 0)
    while any(cursors[s] < len(by_source[s]) for s in by_source):
        s = rng.choice([s for s in by_source if cursors[s] < len(by_source[s])])
        merged.append(by_source[s][cursors[s]])
        cursors[s] += 1
    for i, r in enumerate(merged):
        r.offset = i
    tail = [Record(len(merged) + p, value) for p, card in enumerate(source)
            for _, _, value, _, _ in CardStage("tx", p, topics, lambda state: Intake("kafka", state)).idle_messages(len(card))]
    merged += tail

    whole = Outputs()
    MerchantStage(bundle, 3, topics).process(merged, 0, whole)

    snapshot_at, committed = len(merged) // 3, 2 * len(merged) // 3
    first = MerchantStage(bundle, 3, topics)
    before = Outputs()
    first.process(merged[:snapshot_at], 0, before)
    snapshot = msgspec.msgpack.decode(msgspec.msgpack.encode(first.snapshot()))  # what the snapshot file holds
    first.process(merged[snapshot_at:committed], 0, before)  # results in the sinks, then the crash
    second = MerchantStage(bundle, 3, topics)
    second.restore(snapshot)
    after = Outputs()
    second.process(merged[snapshot_at:], committed, after)
    assert alerts_of([before, after]) == alerts_of([whole])
    assert before.counts["scored"] + after.counts["scored"] == whole.counts["scored"] == len(stream)


def test_messages_forwarded_twice_by_a_restarted_card_stage_are_merged_once(bundle, stream) -> None:
    source = produce(stream, 2, header=True)
    topics = StageTopics(merchant_partitions=1, **TOPICS)
    records: list[Record] = []
    for p, partition in enumerate(source):
        for copy in range(2):  # the card stage crashed after sending, before committing: it sends again
            out = Outputs()
            CardStage("tx", p, topics, lambda state: Intake("kafka", state)).process(partition[: len(partition) // (2 - copy)], 0, out)
            records.extend(Record(0, value) for topic, _, value, _, _ in out.messages if topic == topics.by_merchant)
        records.extend(Record(0, v) for *_, v, _, _ in CardStage("tx", p, topics, lambda s: Intake("kafka", s)).idle_messages(len(partition)))
    for i, r in enumerate(records):
        r.offset = i
    out = Outputs()
    MerchantStage(bundle, 2, topics).process(records, 0, out)
    assert alerts_of([out]) == oracle(bundle, stream) and out.counts["scored"] == len(stream)
