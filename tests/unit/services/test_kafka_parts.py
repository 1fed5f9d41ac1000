"""Kafka pieces that need no broker: settings, partitioning, per-partition snapshots."""

from __future__ import annotations

import pytest
from support import T0, make_txn

from fraudstream.model.features import FeatureState
from fraudstream.services.kafka.partitioning import partition_for
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.runners.snapshots import SnapshotDir


def test_settings_from_the_environment_keep_the_password_out_of_repr() -> None:
    env = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": "b1:9094,b2:9094",
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": "fraud",
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD": "s3cret",
        "FRAUDSTREAM_KAFKA_SSL_CAFILE": "/etc/ca.pem",
        "FRAUDSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    settings = KafkaSettings.from_env(env, sasl_password="from-the-command-line-is-ignored")
    kwargs = settings.client_kwargs()
    assert kwargs["bootstrap_servers"] == ["b1:9094", "b2:9094"]
    assert kwargs["sasl_plain_password"] == "s3cret" and kwargs["ssl_cafile"] == "/etc/ca.pem"
    assert kwargs["ssl_check_hostname"] is False
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"}, "SASL_PASSWORD"),
    ],
)
def test_incomplete_security_settings_are_refused(values, message) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaSettings(**values)


def test_partitions_follow_kafkas_default_partitioner() -> None:
    # Reference values of Kafka's murmur2 partitioner (positive hash modulo partitions).
    from kafka.partitioner.default import murmur2

    for key in ("card-00000001", "card-00000002", "🙂", ""):
        assert partition_for(key, 7) == (murmur2(key.encode()) & 0x7FFFFFFF) % 7
    assert {partition_for(f"card-{i}", 4) for i in range(200)} == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        partition_for("x", 0)


def test_snapshots_round_trip_and_ignore_unusable_files(tmp_path) -> None:
    snapshots = SnapshotDir(tmp_path)
    state = FeatureState()
    for i in range(5):
        state.step(make_txn(i, T0 + i * 60_000, card_id=f"c{i % 2}"))
    restored = FeatureState()
    assert snapshots.load("tx", 0, restored) is None and len(restored) == 0
    snapshots.save("tx", 0, 5, state)
    assert snapshots.load("tx", 0, restored) == 5 and restored.snapshot() == state.snapshot()
    assert not list(tmp_path.glob("*.tmp"))
    snapshots.path("tx", 1).write_bytes(b"not msgpack at all")
    assert snapshots.load("tx", 1, restored) is None


def test_snapshots_are_keyed_on_the_features_version_not_the_model(tmp_path, monkeypatch) -> None:
    """A retrained model resumes the partition's state; only a new feature definition replays from the start."""
    from fraudstream.services.runners import snapshots as module

    snapshots = SnapshotDir(tmp_path)
    state = FeatureState()
    state.step(make_txn(0, T0))
    snapshots.save("tx", 0, 1, state)  # a snapshot holds no model version: nothing to change on retrain
    assert snapshots.load("tx", 0, FeatureState()) == 1
    monkeypatch.setattr(module, "FEATURES_VERSION", "2-other")
    assert snapshots.load("tx", 0, FeatureState()) is None


def test_caught_up_asks_the_broker_for_ends_no_fetch_has_reported() -> None:
    """After a restart with nothing left to read, no fetch may ever report a partition's end; --stop-when-idle
    must still fire (it once hung CI waiting for a high-water mark)."""
    from kafka.errors import KafkaTimeoutError
    from kafka.structs import TopicPartition

    from fraudstream.services.runners.kafka import KafkaRunner

    class Consumer:
        def __init__(self, ends: dict, fail: bool = False) -> None:
            self.ends, self.fail, self.asked = ends, fail, []

        def highwater(self, tp: TopicPartition) -> None:
            return None

        def end_offsets(self, tps: list) -> dict:
            self.asked.append(sorted(tp.partition for tp in tps))
            if self.fail:
                raise KafkaTimeoutError("broker slow")
            return {tp: self.ends[tp] for tp in tps}

        def position(self, tp: TopicPartition) -> int:
            return 40

    from fraudstream.services.runners.kafka import KafkaTopics

    tps = {TopicPartition("t", 0), TopicPartition("t", 1)}
    runner = KafkaRunner.__new__(KafkaRunner)
    runner.partitions, runner._ends, runner._quiet, runner.topics = {}, {}, {}, KafkaTopics("t")
    runner.consumer = Consumer(dict.fromkeys(tps, 40))
    assert not runner._caught_up(tps)  # read to the end, but the merchant stage was not told the source is quiet
    runner._quiet = {("t", 0): (0.0, True), ("t", 1): (0.0, True)}
    assert runner._caught_up(tps) and sorted(runner.consumer.asked) == [[0], [1]]
    runner._ends = {}
    runner.consumer = Consumer({TopicPartition("t", 0): 40, TopicPartition("t", 1): 41})
    assert not runner._caught_up(tps)
    runner._ends = {}
    runner.consumer = Consumer(dict.fromkeys(tps, 40), fail=True)
    assert not runner._caught_up(tps)


def test_the_runner_waits_for_its_source_topic_instead_of_having_the_broker_create_it(monkeypatch) -> None:
    """A consumer subscribing to a missing topic made the broker auto-create it with its default partition count (1)
    when the runner started before the producer on a loaded machine; the producer then sent every card to that one
    partition and the alerts no longer matched ``score --partitions 3``. The runner must wait for the topic, asking
    only for the list of topics, and its consumer must never create one."""
    import kafka

    from fraudstream.services.runners.kafka import KafkaRunner, KafkaTopics

    class Admin:
        def __init__(self, appears_after: int) -> None:
            self.calls, self.appears_after = 0, appears_after

        def list_topics(self) -> list[str]:
            self.calls += 1
            return ["other"] + (["tx"] if self.calls > self.appears_after else [])

    runner = KafkaRunner.__new__(KafkaRunner)
    runner.topics, runner._stopping = KafkaTopics("tx"), False
    admin = Admin(appears_after=2)
    assert runner._await_source(admin, pause_s=0.0) is True
    assert admin.calls == 3  # asked until it appeared, and no further
    runner._stopping = True  # a stop while waiting ends the wait at once
    assert runner._await_source(Admin(appears_after=10**9), pause_s=60.0) is False

    made: list[dict] = []

    class Consumer:
        def __init__(self, **kwargs) -> None:
            made.append(kwargs)

        def subscribe(self, topics: list[str], listener=None) -> None:
            self.topics = topics

    monkeypatch.setattr(kafka, "KafkaConsumer", Consumer)
    runner.settings, runner.group, runner.batch_size, runner.session_timeout_ms = KafkaSettings(), "g", 10, 6000
    consumer = runner._join()
    assert consumer.topics == ["tx", "tx.by-merchant"] and made[0]["allow_auto_create_topics"] is False


def test_a_partition_counts_as_quiet_only_after_being_watched_at_its_end_for_the_whole_quiet_time() -> None:
    """A long store outage blocked the loop; the ends it knew were from before, so every partition looked read to
    its end and 'quiet' for the whole outage, and its Idle let the merge run ahead of data that was waiting."""
    import time

    from kafka.structs import TopicPartition

    from fraudstream.services.runners.kafka import KafkaRunner, KafkaTopics
    from fraudstream.services.runners.kafka_stages import StageTopics

    class Consumer:
        def highwater(self, tp: TopicPartition) -> int:
            return 40

        def position(self, tp: TopicPartition) -> int:
            return 40

    sent: list = []
    tp = TopicPartition("t", 0)
    runner = KafkaRunner.__new__(KafkaRunner)
    runner.partitions, runner._ends, runner.topics, runner.quiet_s = {}, {}, KafkaTopics("t"), 2.0
    runner.stage_topics = StageTopics("t.by-merchant", 3, "s", "d")
    runner.consumer, runner._send = Consumer(), sent.extend
    now = time.monotonic()
    runner._quiet, runner._observed_at = {("t", 0): (now - 100, False)}, now - 60  # the loop was stuck for a minute
    assert runner._announce_quiet({tp}) is False and sent == []
    runner._quiet[("t", 0)] = (time.monotonic() - 3, False)  # watched at its end, loop turning, for 3 s
    assert runner._announce_quiet({tp}) is True and len(sent) == 3  # one Idle per merchant partition
    assert runner._announce_quiet({tp}) is False and len(sent) == 3  # said once per quiet spell
