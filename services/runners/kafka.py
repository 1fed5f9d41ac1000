"""The Kafka runner: the same pure pipeline over a consumer group, crash-safe and exactly-once in effect.

Per partition it keeps its own feature state (cards are keyed by ``card_id``, so a card's history
lives in one partition; merchant features see the merchant's traffic within that partition). For
each polled batch it writes alerts and dead letters to the alert store, sends every verdict to
the scored topic and every bad message to the dead-letter topic, waits for the broker's acks, and
only then commits the offsets. State snapshots are written after commits.

When a partition arrives (start, rebalance, restart after ``kill -9``) the runner seeks to the
partition's last snapshot (or the beginning) and replays up to the committed offset to rebuild
state *without* writing again; from there on results are new. The state of a partition depends
only on its messages in offset order, so whoever processes a partition, and however often it was
interrupted, writes the same alerts. A message whose offsets are not contiguous with the state
(a rebalance or failed commit in between) triggers the same re-initialisation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from fraudstream.model.errors import MissingExtra

try:
    from kafka import ConsumerRebalanceListener
    from kafka.errors import KafkaError
except ModuleNotFoundError as error:  # without the [kafka] extra
    raise MissingExtra("kafka", "the Kafka runner") from error

from fraudstream.model.features.store import StateStore
from fraudstream.model.schema import Transaction
from fraudstream.model.scoring import Scorer
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.pipeline.cards import CardIds, mask_card_numbers_bytes
from fraudstream.services.pipeline.core import DUPLICATE, EventTimeWindow, Intake, alert_record, scored_message
from fraudstream.services.runners.metrics import PipelineMetrics
from fraudstream.services.runners.snapshots import SnapshotDir
from fraudstream.services.runners.stats import RunStats
from fraudstream.services.runners.store_writes import FIRST_CONTACT_S, StoreWait, write_batch
from fraudstream.services.stores.alerts.base import Alert, AlertStore
from fraudstream.services.stores.dead_letters import RECORD_LEVEL, DeadLetter
from fraudstream.services.stores.state.registry import open_state_store

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle

log = logging.getLogger(__name__)
SOURCE_POLL_S = 0.5  # how often a runner asks whether its source topic exists yet


@dataclass(frozen=True)
class KafkaTopics:
    """The three topics of the pipeline."""

    source: str = "transactions"
    scored: str = "transactions.scored"
    dead_letters: str = "transactions.dlq"


@dataclass
class PartitionState:
    """One partition's pipeline: its scorer (with feature state) and where it stands."""

    scorer: Scorer
    intake: Intake  # validation, event-time window and duplicate ids, over the scorer's state
    next_offset: int  # the next message this state expects
    replay_until: int  # messages below this already have results in the sinks: rebuild state only
    snapshot_offset: int = -1  # offset of the last snapshot written


@dataclass
class _Outputs:
    """What one batch sends: alerts and dead letters for the store, messages for the topics."""

    alerts: list[Alert] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    messages: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    produced_ms: list[int] = field(default_factory=list)


class KafkaRunner:
    """Consumes ``topics.source`` in group ``group`` until stopped (or idle, if asked)."""

    def __init__(
        self,
        settings: KafkaSettings,
        bundle: ModelBundle,
        store: AlertStore,
        snapshots: SnapshotDir,
        *,
        group: str = "fraudstream",
        topics: KafkaTopics = KafkaTopics(),
        batch_size: int = 2000,
        poll_ms: int = 100,
        snapshot_seconds: float = 10.0,
        stop_when_idle: float | None = None,
        replication: int = 1,
        session_timeout_s: float = 10.0,
        metrics: PipelineMetrics | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        progress_seconds: float = 0.25,
        window: EventTimeWindow | None = None,
        first_contact_s: float | None = FIRST_CONTACT_S,
        state_store: str = "memory",
        state_ttl_ms: int | None = None,
        card_ids: CardIds | None = None,
    ) -> None:
        self.settings, self.bundle, self.store, self.snapshots = settings, bundle, store, snapshots
        self.card_ids = card_ids if card_ids is not None else CardIds(None)  # one cache for all partitions
        self.window = window
        # where each partition's feature state lives (a name in services/stores/state/registry.py) and its TTL
        self.state_store, self.state_ttl_ms = state_store, state_ttl_ms
        self.group, self.topics = group, topics
        self.batch_size, self.poll_ms = batch_size, poll_ms
        self.snapshot_seconds, self.stop_when_idle = snapshot_seconds, stop_when_idle
        self.replication = replication
        self.session_timeout_ms = int(session_timeout_s * 1000)
        self.metrics = metrics or PipelineMetrics()
        self.on_progress, self.progress_seconds = on_progress, progress_seconds
        self.stats = RunStats()
        self.partitions: dict[int, PartitionState] = {}
        self.lag: dict[int, int] = {}
        self._revoked: set[int] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self.first_contact_s = first_contact_s
        self._snapshot_at = time.monotonic()
        self._encode = msgspec.json.Encoder().encode

    def stop(self) -> None:
        """Finish the current batch, commit, snapshot and leave the group (safe from a signal handler). While
        the store is down the batch is dropped at once instead: nothing of it is committed or snapshotted."""
        self._stopping = True

    # ------------------------------------------------------------------ the loop

    def run(self) -> RunStats:
        """Consume until stopped (or idle); raises :class:`~.store_writes.StoreNeverAnswered` if the store
        never answers within ``first_contact_s`` (nothing of the batch committed or snapshotted)."""
        from fraudstream.services.kafka.producer import make_producer
        from fraudstream.services.kafka.topics import TopicSpec, admin_client, ensure_topics

        ensure_topics(
            self.settings,
            [TopicSpec(name, replication=self.replication) for name in (self.topics.scored, self.topics.dead_letters)],
        )
        self._wait = StoreWait(self.store, lambda: self._stopping, self.first_contact_s)
        admin = admin_client(self.settings)
        try:
            if not self._await_source(admin):
                return self.stats  # asked to stop before the source topic existed: nothing was read
        finally:
            admin.close()
        self.consumer = self._join()
        self.producer = make_producer(self.settings, acks="all")  # idempotent, large batches
        last_data = time.monotonic()
        reported = 0.0
        assignment: set[Any] = set()
        try:
            while not self._stopping:
                batch = self.consumer.poll(timeout_ms=self.poll_ms)
                self._drop_revoked()
                if batch:
                    self._process(batch)
                    last_data = time.monotonic()
                current = set(self.consumer.assignment())
                if current != assignment:  # a rebalance: idle time counts from here
                    assignment, last_data = current, time.monotonic()
                self._update_lag()
                now = time.monotonic()
                if self.on_progress is not None and now - reported >= self.progress_seconds:
                    reported = now
                    self.on_progress(self.stats)
                idle_s = now - last_data
                if self.stop_when_idle is not None and not batch and idle_s >= min(self.stop_when_idle, self._rejoin_after_s):
                    if self._caught_up(assignment):
                        if idle_s >= self.stop_when_idle:
                            self.stats.finished = True
                            break
                    elif idle_s >= self._rejoin_after_s:
                        self._rejoin()  # no data yet not at the end, or no partitions: kafka-python 3.0.12 can wedge
                        assignment, last_data = set(), time.monotonic()
        finally:
            self._shutdown()
        return self.stats

    def _process(self, batch: dict[Any, list[Any]]) -> None:
        out = _Outputs()
        processed: dict[Any, int] = {}
        try:
            for tp, records in batch.items():
                part = self.partitions.get(tp.partition)
                if part is None or records[0].offset != part.next_offset:
                    self._init_partition(tp)  # seeks; these records come again in a later poll
                    continue
                processed[tp] = -1  # its state moves from here on: forgotten below unless committed
                self._process_partition(tp, part, records, out)
                processed[tp] = part.next_offset
            if not processed:
                return
            stored = write_batch(self.store, out.alerts, out.letters, wait=self._wait)
            if stored:
                futures = [self.producer.send(topic, key=key, value=value, headers=headers)
                           for topic, key, value, headers in out.messages]
                self.producer.flush()
                for future in futures:
                    future.get(timeout=0)  # raises if the broker did not take it: nothing is committed then
        except BaseException:
            self._forget(processed)  # a failure or an interrupt mid-batch: no snapshot may hold uncommitted state
            raise
        if not stored:
            self._forget(processed)
            return
        self._commit(processed)
        self._record(out, processed)
        self._maybe_snapshot()

    def _process_partition(self, tp: Any, part: PartitionState, records: list[Any], out: _Outputs) -> None:
        txns: list[Transaction] = []
        keys: list[bytes | None] = []
        replay: list[Transaction] = []
        duplicates = 0
        admit = part.intake.admit_json
        for rec in records:
            outcome = admit(f"{tp.partition}:{rec.offset}", rec.value)
            if rec.offset < part.replay_until:  # rebuild state only: these results are already in the sinks
                if type(outcome) is Transaction:
                    replay.append(outcome)
                continue
            if type(outcome) is Transaction:
                txns.append(outcome)
                keys.append(_scored_key(rec.key, outcome))
                out.produced_ms.append(rec.timestamp)
            elif outcome is DUPLICATE:
                duplicates += 1
            else:
                letter: DeadLetter = outcome  # type: ignore[assignment]
                out.letters.append(letter)
                headers = [
                    ("error.field", (letter.field or RECORD_LEVEL).encode()),
                    ("error.reason", letter.reason.encode()),
                    ("source.topic", tp.topic.encode()),
                    ("source.partition", str(tp.partition).encode()),
                    ("source.offset", str(rec.offset).encode()),
                ]
                # The message as received, card numbers masked in key, value and headers (the letter's reason already is).
                out.messages.append((self.topics.dead_letters, mask_card_numbers_bytes(rec.key or b"") or rec.key,
                                     mask_card_numbers_bytes(rec.value or b""),
                                     [(k, mask_card_numbers_bytes(v) if v else v) for k, v in rec.headers or []] + headers))
                out.produced_ms.append(rec.timestamp)
        if replay:
            part.scorer.features(replay)
        decisions = part.scorer.decide_batch(txns)
        bundle = self.bundle
        for txn, key, d in zip(txns, keys, decisions):
            out.messages.append((self.topics.scored, key, self._encode(scored_message(txn, d, bundle)), []))
            if d.alert:
                out.alerts.append(alert_record(txn, d, bundle))
        part.next_offset = records[-1].offset + 1
        self.stats.counters["read"] += len(records)
        self.stats.counters["scored"] += len(txns)
        self.stats.counters["duplicates"] += duplicates
        self.metrics.duplicates.inc(duplicates)
        self.metrics.consumed.labels(str(tp.partition)).inc(len(records))

    # ------------------------------------------------------------------ partitions

    def _forget(self, processed: dict[Any, int]) -> None:
        """Drop the state of partitions whose batch was not stored and committed: the next owner (or this
        runner, after a seek) rebuilds it from the last snapshot and the committed offset."""
        for tp in processed:
            self.partitions.pop(tp.partition, None)

    def _init_partition(self, tp: Any) -> None:
        """Resume a partition from its snapshot (or the beginning) and mark what is replay."""
        from kafka.structs import TopicPartition

        tp = TopicPartition(tp.topic, tp.partition)
        committed = self.consumer.committed(tp) or 0
        state: StateStore = open_state_store(self.state_store, ttl_ms=self.state_ttl_ms)
        loaded = self.snapshots.load(tp.topic, tp.partition, state)
        if loaded is not None:
            start = loaded[0]
        else:
            start = self.consumer.beginning_offsets([tp])[tp]
            if start > 0:
                log.warning("partition %s starts at offset %d: earlier history is gone, state rebuilt from there", tp, start)
        self.consumer.seek(tp, start)
        intake = Intake(f"kafka:{tp.topic}:{tp.partition}", state, window=self.window, card_ids=self.card_ids)
        self.partitions[tp.partition] = PartitionState(
            Scorer(self.bundle, state), intake, next_offset=start, replay_until=max(committed, start), snapshot_offset=start
        )
        log.info("partition %s: resume at %d, replay to %d", tp, start, max(committed, start))

    def _revoke(self, partitions: set[int]) -> None:
        with self._lock:
            self._revoked |= partitions

    def _drop_revoked(self) -> None:
        """Snapshot and forget partitions this runner no longer owns (everything processed is committed)."""
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        for p in revoked:
            part = self.partitions.pop(p, None)
            if part is not None and part.next_offset > part.snapshot_offset:
                self.snapshots.save(self.topics.source, p, part.next_offset, part.scorer.state)
            self.lag.pop(p, None)

    def _commit(self, processed: dict[Any, int]) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        try:
            self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in processed.items()})
        except CommitFailedError as error:
            # A rebalance took partitions away mid-batch: their results are in the sinks (idempotent);
            # the new owner replays from its snapshot. Forget them here so nothing stale is reused.
            log.warning("offset commit failed (%s); dropping partitions %s", error, sorted(tp.partition for tp in processed))
            for tp in processed:
                self.partitions.pop(tp.partition, None)

    def _maybe_snapshot(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._snapshot_at < self.snapshot_seconds:
            return
        self._snapshot_at = now
        for p, part in self.partitions.items():
            if part.next_offset > part.snapshot_offset:
                self.snapshots.save(self.topics.source, p, part.next_offset, part.scorer.state)
                part.snapshot_offset = part.next_offset

    def _await_source(self, admin: Any, pause_s: float = SOURCE_POLL_S) -> bool:
        """Wait until the source topic exists (True), or until asked to stop (False).

        Subscribing to a topic that does not exist yet makes a broker with ``auto.create.topics.enable`` create
        it with *its* default partition count; a producer started at the same time then finds it and sends
        every card to that layout instead of the one it asked for, and the per-partition state no longer matches
        ``score --partitions``. So the runner reads only a topic someone else has created, asking the broker
        for the list of topics (a request that never creates one).
        """
        waited = False
        while not self._stopping:
            if self.topics.source in admin.list_topics():
                return True
            if not waited:
                log.warning("topic %s does not exist yet: waiting for it to be created", self.topics.source)
                waited = True
            until = time.monotonic() + pause_s
            while not self._stopping and time.monotonic() < until:
                time.sleep(min(0.05, pause_s))
        return False

    def _join(self) -> Any:
        """A consumer of the source topic in this runner's group, subscribed (partitions come with the join)."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            **self.settings.client_kwargs(),
            group_id=self.group,
            # A reader never creates what it reads. kafka-python 3.0.12 does not pass this on to its metadata
            # requests, so _await_source (run before any consumer exists) is what actually prevents it.
            allow_auto_create_topics=False,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            # How soon a crashed runner's partitions move to the others of its group.
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 3),
        )
        consumer.subscribe([self.topics.source], listener=_Listener(self))
        return consumer

    @property
    def _rejoin_after_s(self) -> float:
        return max(30.0, 3 * self.session_timeout_ms / 1000)

    def _rejoin(self) -> None:
        """Replace a consumer that has brought nothing for a long time although there is more to read (or that
        never got partitions): snapshot and forget what it owned (all of it committed), then join anew."""
        log.warning("no data for %.0f s and not at the end: rejoining group %s with a new consumer", self._rejoin_after_s, self.group)
        self._revoke(set(self.partitions))
        self._drop_revoked()
        self.consumer.close(autocommit=False)
        self.consumer = self._join()

    def _caught_up(self, assignment: set[Any]) -> bool:
        """Whether every assigned partition has been read to its end. The end comes from the last fetch, or, for
        a partition no fetch has reported on (one with nothing left to read after a restart), from the broker."""
        if not assignment:
            return False
        ends = {tp: self.consumer.highwater(tp) for tp in assignment}
        unknown = [tp for tp, high in ends.items() if high is None]
        if unknown:
            try:
                ends.update(self.consumer.end_offsets(unknown))
            except KafkaError:
                return False
        for tp in assignment:
            part = self.partitions.get(tp.partition)
            position = part.next_offset if part is not None else self.consumer.position(tp)
            if ends.get(tp) is None or position < ends[tp]:
                return False
        return True

    def _update_lag(self) -> None:
        from kafka.structs import TopicPartition

        for p, part in self.partitions.items():
            high = self.consumer.highwater(TopicPartition(self.topics.source, p))
            if high is not None:
                self.lag[p] = max(0, high - part.next_offset)
                self.metrics.lag.labels(str(p)).set(self.lag[p])
        self.stats.lag = sum(self.lag.values())

    def _record(self, out: _Outputs, processed: dict[Any, int]) -> None:
        stats, m = self.stats, self.metrics
        now_ms = time.time() * 1000
        latencies = [(now_ms - t) / 1000 for t in out.produced_ms if t is not None and t > 0]
        stats.latencies_s.extend(latencies)
        for value in latencies:
            m.latency.observe(value)
        stats.counters["alerts"] += len(out.alerts)
        stats.counters["dead_letters"] += len(out.letters)
        stats.recent_alerts.extend(out.alerts)
        stats.dead_letter_fields.update(letter.field or RECORD_LEVEL for letter in out.letters)
        stats.position = stats.counters["read"]
        m.scored.inc(sum(1 for topic, *_ in out.messages if topic == self.topics.scored))
        m.alerts.inc(len(out.alerts))
        for letter in out.letters:
            m.dead_letters.labels(letter.field or RECORD_LEVEL).inc()

    def _shutdown(self) -> None:
        try:
            self._maybe_snapshot(force=True)
        finally:
            self.consumer.close(autocommit=False)
            self.producer.close()


class _Listener(ConsumerRebalanceListener):
    """Rebalance callbacks run on kafka-python's IO thread: only note what was revoked."""

    def __init__(self, runner: KafkaRunner) -> None:
        self.runner = runner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.runner._revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass  # state is set up lazily in the main loop, on the partition's first messages

    def on_partitions_lost(self, lost: Any) -> None:
        self.runner._revoke({tp.partition for tp in lost})


def _scored_key(key: bytes | None, txn: Transaction) -> bytes | None:
    """The scored message's key: the input's, unless it holds a card number (then the card's keyed id)."""
    if key is not None and len(key) >= 13 and key[-1:].isdigit() and mask_card_numbers_bytes(key) != key:
        return txn.card_id.encode()
    return key
