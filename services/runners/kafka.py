"""The Kafka runner: the same pure pipeline over a consumer group, crash-safe and exactly-once in effect.

One consumer reads two topics: the source (keyed by card: the *card stage*) and the by-merchant topic
the card stage forwards to (keyed by merchant: the *merchant stage*), so card features see all of a
card's traffic and merchant features all of a merchant's, whatever the number of partitions and
runners (:mod:`~fraudstream.services.runners.kafka_stages` says how, and in which order). For each
polled batch it writes alerts and dead letters to the alert store, sends the forwarded transactions,
every verdict to the scored topic and every bad message to the dead-letter topic, waits for the
broker's acks, and only then commits the offsets of both topics. State snapshots are written after
commits.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fraudstream.model.errors import MissingExtra

try:
    from kafka import ConsumerRebalanceListener
    from kafka.errors import KafkaError
except ModuleNotFoundError as error:  # without the [kafka] extra
    raise MissingExtra("kafka", "the Kafka runner") from error

from fraudstream.services.defaults import KAFKA_QUIET_S
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import EventTimeWindow, Intake
from fraudstream.services.runners.kafka_stages import (
    CardStage,
    Idle,
    MerchantStage,
    Outputs,
    Send,
    StageTopics,
    encode_stage_message,
)
from fraudstream.services.runners.metrics import PipelineMetrics
from fraudstream.services.runners.snapshots import SnapshotDir
from fraudstream.services.runners.stats import RunStats
from fraudstream.services.runners.store_writes import FIRST_CONTACT_S, StoreWait, write_batch
from fraudstream.services.stores.alerts.base import AlertStore
from fraudstream.services.stores.dead_letters import RECORD_LEVEL

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle

log = logging.getLogger(__name__)
SOURCE_POLL_S = 0.5  # how often a runner asks whether its source topic exists yet


@dataclass(frozen=True)
class KafkaTopics:
    """The topics of the pipeline: the source, the by-merchant hand-over between the stages, and the sinks."""

    source: str = "transactions"
    scored: str = "transactions.scored"
    dead_letters: str = "transactions.dlq"
    by_merchant: str | None = None  # default: "<source>.by-merchant"

    @property
    def merchants(self) -> str:
        """The by-merchant topic the card stage forwards to and the merchant stage reads."""
        return self.by_merchant or f"{self.source}.by-merchant"


@dataclass
class PartitionState:
    """One partition's stage (card or merchant, with its feature state) and where it stands."""

    stage: CardStage | MerchantStage
    next_offset: int  # the next message this state expects
    replay_until: int  # messages below this already have results in the sinks: rebuild state only
    snapshot_offset: int = -1  # offset of the last snapshot written


class KafkaRunner:
    """Consumes ``topics.source`` (card stage) and ``topics.merchants`` (merchant stage) in group ``group``
    until stopped (or idle, if asked). See :mod:`~fraudstream.services.runners.kafka_stages`."""

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
        state_ttl_ms: int | None = None,
        card_ids: CardIds | None = None,
        quiet_s: float = KAFKA_QUIET_S,
    ) -> None:
        self.settings, self.bundle, self.store, self.snapshots = settings, bundle, store, snapshots
        self.card_ids = card_ids if card_ids is not None else CardIds(None)  # one cache for all partitions
        self.window = window
        self.state_ttl_ms = state_ttl_ms  # idle cards and merchants expire after this much event time
        self.group, self.topics = group, topics
        self.batch_size, self.poll_ms = batch_size, poll_ms
        self.snapshot_seconds, self.stop_when_idle = snapshot_seconds, stop_when_idle
        self.quiet_s = quiet_s  # a card partition with nothing new for this long stops holding the merge back
        self.replication = replication
        self.session_timeout_ms = int(session_timeout_s * 1000)
        self.metrics = metrics or PipelineMetrics()
        self.on_progress, self.progress_seconds = on_progress, progress_seconds
        self.stats = RunStats()
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self.lag: dict[tuple[str, int], int] = {}
        self._revoked: set[tuple[str, int]] = set()
        # card partitions read to their end: since when (monotonic), and whether the merge was told (Idle sent)
        self._quiet: dict[tuple[str, int], tuple[float, bool]] = {}
        self._ends: dict[Any, tuple[float, int]] = {}  # ends asked of the broker, with when
        self._observed_at = time.monotonic()  # when the partitions' ends were last looked at
        self._lock = threading.Lock()
        self._stopping = False
        self.first_contact_s = first_contact_s
        self._snapshot_at = time.monotonic()

    def stop(self) -> None:
        """Finish the current batch, commit, snapshot and leave the group (safe from a signal handler). While
        the store is down the batch is dropped at once instead: nothing of it is committed or snapshotted."""
        self._stopping = True

    # ------------------------------------------------------------------ the loop

    def run(self) -> RunStats:
        """Consume until stopped (or idle); raises :class:`~.store_writes.StoreNeverAnswered` if the store
        never answers within ``first_contact_s`` (nothing of the batch committed or snapshotted)."""
        from fraudstream.services.kafka.producer import make_producer
        from fraudstream.services.kafka.topics import TopicSpec, admin_client, ensure_topics, partition_count

        self._wait = StoreWait(self.store, lambda: self._stopping, self.first_contact_s)
        admin = admin_client(self.settings)
        try:
            if not self._await_source(admin):
                return self.stats  # asked to stop before the source topic existed: nothing was read
            sources = partition_count(admin, self.topics.source)
            ensure_topics(self.settings, [
                TopicSpec(self.topics.scored, replication=self.replication),
                TopicSpec(self.topics.dead_letters, replication=self.replication),
                # as many merchant partitions as card partitions: the two stages scale together
                TopicSpec(self.topics.merchants, partitions=sources, replication=self.replication),
            ], admin=admin)
            merchants = partition_count(admin, self.topics.merchants)
        finally:
            admin.close()
        self.stage_topics = StageTopics(self.topics.merchants, merchants, self.topics.scored, self.topics.dead_letters)
        self.sources = sources
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
                if self._announce_quiet(assignment):
                    last_data = time.monotonic()
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
        out = Outputs()
        processed: dict[Any, int] = {}
        try:
            for tp, records in batch.items():
                part = self.partitions.get((tp.topic, tp.partition))
                if part is None or records[0].offset != part.next_offset:
                    self._init_partition(tp)  # seeks; these records come again in a later poll
                    continue
                processed[tp] = -1  # its state moves from here on: forgotten below unless committed
                part.stage.process(records, part.replay_until, out)
                part.next_offset = records[-1].offset + 1
                if isinstance(part.stage, CardStage):
                    self._quiet.pop((tp.topic, tp.partition), None)
                    self.metrics.consumed.labels(str(tp.partition)).inc(len(records))
                processed[tp] = part.next_offset
            if not processed:
                return
            stored = write_batch(self.store, out.alerts, out.letters, wait=self._wait)
            if stored:
                self._send(out.messages)
        except BaseException:
            self._forget(processed)  # a failure or an interrupt mid-batch: no snapshot may hold uncommitted state
            raise
        if not stored:
            self._forget(processed)
            return
        self._commit(processed)
        self._record(out)
        self._maybe_snapshot()

    def _send(self, messages: list[Send]) -> None:
        """Send and wait for every acknowledgement; raises if the broker did not take one (nothing is committed then)."""
        futures = [self.producer.send(topic, key=key, value=value, headers=headers, partition=partition)
                   for topic, key, value, headers, partition in messages]
        self.producer.flush()
        for future in futures:
            future.get(timeout=0)

    def _announce_quiet(self, assignment: set[Any]) -> bool:
        """Tell the merchant stage about card partitions read to their end with nothing new for ``quiet_s``, so
        they stop holding the merge back; True if anything was sent. (Nothing to commit: an Idle lost in a
        crash is sent again by the partition's next owner.)"""
        now = time.monotonic()
        if now - self._observed_at > min(1.0, self.quiet_s / 2):
            # The loop was busy (a long batch, a store outage): nobody watched the partitions meanwhile, and the ends
            # known are from before. Quiet time counts again from now, or a busy partition would pass for quiet.
            self._quiet = {key: (now, True) if announced else (now, False) for key, (_, announced) in self._quiet.items()}
        self._observed_at = now
        messages: list[Send] = []
        for tp in assignment:
            key = (tp.topic, tp.partition)
            if tp.topic != self.topics.source or self._quiet.get(key, (0.0, False))[1]:
                continue
            position, end = self._position(tp), self._end(tp)
            if end is None or position < end:
                self._quiet.pop(key, None)
                continue
            since = self._quiet.setdefault(key, (now, False))[0]
            if now - since >= self.quiet_s:
                idle = encode_stage_message(Idle(tp.partition, position))
                messages.extend((self.stage_topics.by_merchant, None, idle, [], q)
                                for q in range(self.stage_topics.merchant_partitions))
                self._quiet[key] = (since, True)
        if messages:
            self._send(messages)
        return bool(messages)

    def _position(self, tp: Any) -> int:
        part = self.partitions.get((tp.topic, tp.partition))
        return part.next_offset if part is not None else self.consumer.position(tp)

    def _end(self, tp: Any) -> int | None:
        """The partition's end: from the last fetch, or (no fetch has reported: nothing left to read after a
        restart, or an empty partition) from the broker, asked at most once a second."""
        high = self.consumer.highwater(tp)
        if high is not None:
            return int(high)
        asked = self._ends.get(tp)
        if asked is None or time.monotonic() - asked[0] >= 1.0:
            try:
                asked = self._ends[tp] = (time.monotonic(), self.consumer.end_offsets([tp])[tp])
            except KafkaError:
                return None
        return asked[1]

    # ------------------------------------------------------------------ partitions

    def _forget(self, processed: dict[Any, int]) -> None:
        """Drop the state of partitions whose batch was not stored and committed: the next owner (or this
        runner, after a seek) rebuilds it from the last snapshot and the committed offset."""
        for tp in processed:
            self.partitions.pop((tp.topic, tp.partition), None)

    def _new_stage(self, topic: str, partition: int) -> CardStage | MerchantStage:
        if topic == self.topics.source:
            window, card_ids = self.window, self.card_ids
            return CardStage(topic, partition, self.stage_topics, lambda state: Intake(
                f"kafka:{topic}:{partition}", state, window=window, card_ids=card_ids), self.state_ttl_ms)
        return MerchantStage(self.bundle, self.sources, self.stage_topics, self.state_ttl_ms)

    def _init_partition(self, tp: Any) -> None:
        """Resume a partition from its snapshot (or the beginning) and mark what is replay."""
        from kafka.structs import TopicPartition

        tp = TopicPartition(tp.topic, tp.partition)
        committed = self.consumer.committed(tp) or 0
        stage = self._new_stage(tp.topic, tp.partition)
        loaded = self.snapshots.load(tp.topic, tp.partition, stage)
        if loaded is not None:
            start = loaded
        else:
            start = self.consumer.beginning_offsets([tp])[tp]
            if start > 0:
                log.warning("partition %s starts at offset %d: earlier history is gone, state rebuilt from there", tp, start)
        self.consumer.seek(tp, start)
        self.partitions[(tp.topic, tp.partition)] = PartitionState(
            stage, next_offset=start, replay_until=max(committed, start), snapshot_offset=start
        )
        log.info("partition %s: resume at %d, replay to %d", tp, start, max(committed, start))

    def _revoke(self, partitions: set[tuple[str, int]]) -> None:
        with self._lock:
            self._revoked |= partitions

    def _drop_revoked(self) -> None:
        """Snapshot and forget partitions this runner no longer owns (everything processed is committed)."""
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        for key in revoked:
            part = self.partitions.pop(key, None)
            if part is not None and part.next_offset > part.snapshot_offset:
                self.snapshots.save(key[0], key[1], part.next_offset, part.stage)
            self.lag.pop(key, None)

    def _commit(self, processed: dict[Any, int]) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        try:
            self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in processed.items()})
        except CommitFailedError as error:
            # A rebalance took partitions away mid-batch: their results are in the sinks (idempotent);
            # the new owner replays from its snapshot. Forget them here so nothing stale is reused.
            log.warning("offset commit failed (%s); dropping partitions %s", error, sorted(str(tp) for tp in processed))
            self._forget(processed)

    def _maybe_snapshot(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._snapshot_at < self.snapshot_seconds:
            return
        self._snapshot_at = now
        for (topic, p), part in self.partitions.items():
            if part.next_offset > part.snapshot_offset:
                self.snapshots.save(topic, p, part.next_offset, part.stage)
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
        """A consumer of the source and by-merchant topics in this runner's group, subscribed (partitions come
        with the join: each runner gets card partitions and merchant partitions)."""
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
        consumer.subscribe([self.topics.source, self.topics.merchants], listener=_Listener(self))
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
        """Whether every assigned partition has been read to its end, every card partition has told the merge it
        is quiet, and no merchant partition holds transactions back."""
        if not assignment:
            return False
        for tp in assignment:
            end = self._end(tp)
            if end is None or self._position(tp) < end:
                return False
            if tp.topic == self.topics.source:
                if not self._quiet.get((tp.topic, tp.partition), (0.0, False))[1]:
                    return False
            else:
                part = self.partitions.get((tp.topic, tp.partition))
                if part is not None and isinstance(part.stage, MerchantStage) and part.stage.pending:
                    return False
        return True

    def _update_lag(self) -> None:
        from kafka.structs import TopicPartition

        for (topic, p), part in self.partitions.items():
            if topic != self.topics.source:
                continue
            high = self.consumer.highwater(TopicPartition(topic, p))
            if high is not None:
                self.lag[(topic, p)] = max(0, high - part.next_offset)
                self.metrics.lag.labels(str(p)).set(self.lag[(topic, p)])
        self.stats.lag = sum(self.lag.values())

    def _record(self, out: Outputs) -> None:
        stats, m = self.stats, self.metrics
        now_ms = time.time() * 1000
        latencies = [(now_ms - t) / 1000 for t in out.produced_ms if t is not None and t > 0]
        stats.latencies_s.extend(latencies)
        for value in latencies:
            m.latency.observe(value)
        for name, count in out.counts.items():
            stats.counters[name] = stats.counters.get(name, 0) + count
        m.duplicates.inc(out.counts["duplicates"])
        m.late.inc(out.counts["late"])
        m.pending.set(sum(part.stage.pending for part in self.partitions.values() if isinstance(part.stage, MerchantStage)))
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
        self.runner._revoke({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass  # state is set up lazily in the main loop, on the partition's first messages

    def on_partitions_lost(self, lost: Any) -> None:
        self.runner._revoke({(tp.topic, tp.partition) for tp in lost})

