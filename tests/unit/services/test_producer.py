"""The Kafka producer without a broker: keys, values, pacing, delivery accounting, dead letters, the CLI."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
import typer
from typer.testing import CliRunner, Result

from fraudstream.services.cli import app
from fraudstream.services.kafka import producer as producer_module
from fraudstream.services.kafka import topics as topics_module
from fraudstream.services.kafka.producer import (
    UNDELIVERED,
    MemoryProducer,
    ProduceStats,
    encode_row,
    make_producer,
    parse_acks,
    produce_raw,
    produce_rows,
)
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.kafka.topics import KafkaUnavailable, TopicError, TopicSpec, ensure_topic, ensure_topics
from fraudstream.services.stores.dead_letters import read_dead_letters

FIXTURES = Path(__file__).parents[2] / "fixtures"
SETTINGS = KafkaSettings(bootstrap="127.0.0.1:1")  # never contacted: every test injects a producer


def rows(n: int, cards: int = 3) -> list[dict[str, Any]]:
    return [
        {"transaction_id": f"t{i}", "card_id": f"card-{i % cards}", "merchant_id": "m1", "amount": 1.5 + i,
         "timestamp": "2026-01-01T00:00:00+00:00", "extra": None}
        for i in range(n)
    ]


class FakeClock:
    """Time that moves only when slept through, or by ``cost`` per reading (work between sleeps)."""

    def __init__(self, cost: float = 0.0) -> None:
        self.now = 1_000.0
        self.cost = cost
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.now += self.cost
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class SendTimes(MemoryProducer):
    """Records the clock at each send."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock, self.times = clock, []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> Any:
        self.times.append(self.clock.now)
        return super().send(topic, value=value, key=key, **kw)


# --------------------------------------------------------------------------- keys and values


def test_each_message_is_keyed_by_its_card_and_carries_the_row_as_compact_json() -> None:
    fake = MemoryProducer()
    data = rows(9)
    stats = produce_rows(data, SETTINGS, "transactions", producer=fake)
    assert (stats.sent, stats.failed, stats.queued) == (9, 0, 9)
    assert [topic for topic, _, _ in fake.messages] == ["transactions"] * 9
    assert [key for _, key, _ in fake.messages] == [row["card_id"].encode() for row in data]
    assert [json.loads(value) for _, _, value in fake.messages] == data  # order kept, None kept
    assert b" " not in fake.messages[0][2].replace(b"+00:00", b"")  # compact: no separators' spaces


def test_a_cards_messages_share_a_partition_in_their_original_order() -> None:
    fake = MemoryProducer(partitions=4)
    produce_rows(rows(40, cards=7), SETTINGS, "transactions", producer=fake)
    by_card: dict[bytes, list[tuple[int, int]]] = {}
    for _, key, value in fake.messages:
        by_card.setdefault(key, []).append((fake.partition_of(key), int(json.loads(value)["transaction_id"][1:])))
    assert len(by_card) == 7
    for seen in by_card.values():
        assert len({partition for partition, _ in seen}) == 1
        assert [n for _, n in seen] == sorted(n for _, n in seen)


def test_missing_or_empty_card_gives_no_key_and_non_string_cards_are_text() -> None:
    assert encode_row({"amount": 1})[0] is None
    assert encode_row({"card_id": None})[0] is None
    assert encode_row({"card_id": ""})[0] is None
    assert encode_row({"card_id": 4111111111111111})[0] == b"4111111111111111"
    assert encode_row({"card_id": "carte-é"})[0] == "carte-é".encode()
    key, value = encode_row({"card_id": "c", "amount": 2.5, "note": "naïve"})
    assert msgspec.json.decode(value) == {"card_id": "c", "amount": 2.5, "note": "naïve"}
    assert "naïve".encode() in value  # UTF-8, not \\u escapes


def test_a_row_that_cannot_be_encoded_fails_alone() -> None:
    fake = MemoryProducer()
    data = [{"card_id": "a"}, {"card_id": "b", "bad": object()}, {"card_id": "c"}]
    stats = produce_rows(data, SETTINGS, "t", producer=fake)
    assert (stats.sent, stats.failed) == (2, 1)
    assert stats.errors == Counter({"unencodable": 1})
    assert [key for _, key, _ in fake.messages] == [b"a", b"c"]


def test_produce_raw_sends_the_bytes_as_given() -> None:
    fake = MemoryProducer()
    messages = [(None, b"not json"), (b"k", b"\xff\xfe"), (b"card-1", b'{"card_id":"card-1"}')]
    stats = produce_raw(messages, SETTINGS, "transactions", producer=fake)
    assert stats.sent == 3
    assert [(key, value) for _, key, value in fake.messages] == messages


# --------------------------------------------------------------------------- delivery accounting


def test_failures_are_counted_from_the_errbacks_with_their_reason() -> None:
    class NotEnoughReplicas(Exception):
        pass

    def fail(topic: str, key: bytes | None, value: bytes) -> BaseException | None:
        return NotEnoughReplicas("only 1 in sync") if key == b"card-1" else None

    fake = MemoryProducer(fail=fail)
    stats = produce_rows(rows(9), SETTINGS, "t", producer=fake)
    assert (stats.sent, stats.failed) == (6, 3)
    assert stats.errors == Counter({"NotEnoughReplicas": 3})
    assert "only 1 in sync" in stats.describe_errors()
    assert fake.flushes == 1


def test_counts_come_from_the_answers_not_from_send() -> None:
    """A producer that never answers: nothing counts as sent, and the flush reports every message."""

    class Silent(MemoryProducer):
        def flush(self, timeout: float | None = None) -> None:
            self.flushes += 1  # answers nothing

    stats = produce_rows(rows(5), SETTINGS, "t", producer=Silent())
    assert (stats.sent, stats.failed, stats.pending) == (0, 5, 0)
    assert stats.errors == Counter({UNDELIVERED: 5})


def test_flush_is_repeated_until_every_answer_is_in() -> None:
    """kafka-python's flush can return (or raise) before the batches it split are answered."""

    class Splitting(MemoryProducer):
        def flush(self, timeout: float | None = None) -> None:
            self.flushes += 1
            half = len(self._pending) // 2
            answer, self._pending = self._pending[:half or 1], self._pending[half or 1:]
            for entry in answer:
                self._answer(*entry)
            if self._pending:
                raise RuntimeError("Future not done")

    fake = Splitting()
    stats = produce_rows(rows(16), SETTINGS, "t", producer=fake)
    assert (stats.sent, stats.failed) == (16, 0)
    assert fake.flushes >= 4


def test_a_broker_error_without_a_message_is_explained_by_its_description() -> None:
    from kafka.errors import MessageSizeTooLargeError

    fake = MemoryProducer(fail=lambda t, k, v: MessageSizeTooLargeError())
    stats = produce_rows(rows(1), SETTINGS, "t", producer=fake)
    assert stats.errors == Counter({"MessageSizeTooLargeError": 1})
    assert "maximum message size" in stats.examples["MessageSizeTooLargeError"]


def test_a_send_that_raises_counts_as_failed_and_the_rest_go_on() -> None:
    class TooLarge(MemoryProducer):
        def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> Any:
            if key == b"card-2":
                raise ValueError("message is 2,000,000 bytes, more than max_request_size")
            return super().send(topic, value=value, key=key, **kw)

    stats = produce_rows(rows(6), SETTINGS, "t", producer=TooLarge())
    assert (stats.sent, stats.failed) == (4, 2)
    assert stats.errors == Counter({"ValueError": 2})


def test_callbacks_from_another_thread_are_all_counted() -> None:
    """kafka-python answers on its I/O thread, sometimes while the main thread is still sending."""

    class Threaded(MemoryProducer):
        def flush(self, timeout: float | None = None) -> None:
            pending, self._pending = self._pending, []
            workers = [threading.Thread(target=lambda part=pending[i::4]: [self._answer(*e) for e in part])
                       for i in range(4)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

    fail = lambda topic, key, value: RuntimeError("x") if value.endswith(b"7}") else None  # noqa: E731
    data = [{"card_id": str(i % 5), "n": i} for i in range(20_000)]
    stats = produce_rows(data, SETTINGS, "t", producer=Threaded(fail=fail))
    assert stats.sent + stats.failed == 20_000
    assert stats.failed == 2_000


def test_an_injected_producer_is_flushed_but_left_open() -> None:
    fake = MemoryProducer()
    produce_rows(rows(2), SETTINGS, "t", producer=fake)
    assert fake.flushes == 1 and not fake.closed


def test_bad_acks_and_negative_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="--acks must be one of all, 1, 0"):
        produce_rows(rows(1), SETTINGS, "t", acks="2", producer=MemoryProducer())
    for rate in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate"):
            produce_rows(rows(1), SETTINGS, "t", rate=rate, producer=MemoryProducer())
    assert [parse_acks(a) for a in ("all", "ALL", "-1", "1", "0", 1, 0)] == ["all", "all", "all", 1, 0, 1, 0]


# --------------------------------------------------------------------------- pacing


@pytest.mark.parametrize("rate", [1.0, 250.0, 10_000.0])
def test_n_messages_at_rate_r_take_n_minus_one_over_r(rate: float) -> None:
    clock = FakeClock()
    fake = SendTimes(clock)
    n = 200
    stats = produce_rows(rows(n), SETTINGS, "t", rate=rate, producer=fake, clock=clock, sleep=clock.sleep)
    assert stats.sent == n
    assert stats.elapsed_s == pytest.approx((n - 1) / rate, rel=1e-9)
    start = fake.times[0]
    assert fake.times == pytest.approx([start + i / rate for i in range(n)], abs=1e-9)


def test_the_topics_metadata_is_fetched_before_the_pacing_clock_starts() -> None:
    """kafka-python's first send() of a topic blocks for metadata; that wait must not eat the schedule."""
    clock = FakeClock()

    class SlowMetadata(SendTimes):
        def partitions_for(self, topic: str) -> set[int]:
            assert self.messages == []
            clock.now += 0.3
            return super().partitions_for(topic)

    fake = SlowMetadata(clock)
    stats = produce_rows(rows(11), SETTINGS, "tx", rate=10.0, producer=fake, clock=clock, sleep=clock.sleep)
    assert fake.metadata_requests == ["tx"]
    assert [round(t - fake.times[0], 9) for t in fake.times] == [round(i / 10, 9) for i in range(11)]
    assert stats.elapsed_s == pytest.approx(1.0)


def test_pacing_does_not_drift_when_each_send_costs_time() -> None:
    """Work between messages is absorbed by the next pause instead of adding up."""
    clock = FakeClock(cost=0.0004)  # every reading of the clock costs 0.4 ms of "work"
    fake = SendTimes(clock)
    n, rate = 1_000, 500.0
    produce_rows(rows(n), SETTINGS, "t", rate=rate, producer=fake, clock=clock, sleep=clock.sleep)
    start = fake.times[0]
    lateness = [t - (start + i / rate) for i, t in enumerate(fake.times)]
    assert min(lateness) >= -1e-9  # never early
    assert max(lateness) < 0.002  # and never more than a few clock readings late, even at the end
    assert fake.times[-1] - start == pytest.approx((n - 1) / rate, abs=0.002)


def test_a_late_start_is_caught_up_without_pausing() -> None:
    """Messages behind schedule go out at once; pacing resumes at the original deadlines."""
    clock = FakeClock()
    fake = SendTimes(clock)

    def slow_start() -> Any:
        for i, row in enumerate(rows(10)):
            if i == 1:
                clock.now += 0.35  # reading stalls for 3.5 intervals after the first row
            yield row

    produce_rows(slow_start(), SETTINGS, "t", rate=10.0, producer=fake, clock=clock, sleep=clock.sleep)
    start = fake.times[0]
    offsets = [round(t - start, 9) for t in fake.times]
    assert offsets == [0.0, 0.35, 0.35, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.mark.parametrize("rate", [None, 0])
def test_no_rate_means_no_pauses(rate: float | None) -> None:
    clock = FakeClock()
    produce_rows(rows(50), SETTINGS, "t", rate=rate, producer=MemoryProducer(), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_progress_is_reported_while_sending_and_once_at_the_end() -> None:
    clock = FakeClock()
    seen: list[tuple[int, float]] = []
    produce_rows(rows(21), SETTINGS, "t", rate=20.0, producer=MemoryProducer(immediate=True), clock=clock,
                 sleep=clock.sleep, on_progress=lambda s: seen.append((s.sent, s.elapsed_s)))
    assert len(seen) >= 4  # a second of sending, a report every quarter second, and the last
    assert seen[-1] == (21, pytest.approx(1.0))
    assert [sent for sent, _ in seen] == sorted(sent for sent, _ in seen)


def test_a_stop_ends_the_run_after_flushing_what_was_sent() -> None:
    stop = threading.Event()
    fake = MemoryProducer()

    def stream() -> Any:
        for i, row in enumerate(rows(100)):
            if i == 30:
                stop.set()
            yield row

    stats = produce_rows(stream(), SETTINGS, "t", producer=fake, stop=stop)
    assert stats.stopped and stats.sent == 30 and fake.flushes == 1


def test_rate_is_acknowledged_messages_per_second() -> None:
    assert ProduceStats(sent=300, elapsed_s=1.5).rate() == 200.0
    assert ProduceStats(sent=3, elapsed_s=0.0).rate() == 0.0


# --------------------------------------------------------------------------- producer settings


class Recorder:
    """Stands in for kafka.KafkaProducer / KafkaAdminClient and keeps the keyword arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def test_acks_all_is_idempotent_and_acks_1_keeps_order_with_one_request_in_flight(monkeypatch) -> None:
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", Recorder)
    settings = KafkaSettings(bootstrap="a:9092,b:9092")
    strong = make_producer(settings, "all").kwargs
    assert strong["enable_idempotence"] is True and strong["acks"] == "all"
    assert strong["bootstrap_servers"] == ["a:9092", "b:9092"]
    assert strong["linger_ms"] > 0 and strong["batch_size"] >= 16_384
    fast = make_producer(settings, "1").kwargs
    assert fast["enable_idempotence"] is False and fast["acks"] == 1
    assert fast["max_in_flight_requests_per_connection"] == 1
    assert make_producer(settings, "0").kwargs["acks"] == 0


def test_the_real_producer_class_accepts_our_options() -> None:
    """Every option we pass is one kafka-python 3 knows (it rejects unknown ones before connecting)."""
    from kafka import KafkaProducer

    options = {"acks", "enable_idempotence", "linger_ms", "batch_size", "compression_type",
               "bootstrap_timeout_ms", "max_in_flight_requests_per_connection"}
    assert options <= set(KafkaProducer.DEFAULT_CONFIG)


def test_an_unreachable_cluster_is_reported_as_such(monkeypatch) -> None:
    from kafka.errors import KafkaTimeoutError

    import kafka

    def refuse(**kwargs: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(kafka, "KafkaProducer", refuse)
    monkeypatch.setattr(kafka, "KafkaAdminClient", refuse)
    with pytest.raises(KafkaUnavailable, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        produce_rows(rows(1), SETTINGS, "t")
    with pytest.raises(KafkaUnavailable):
        ensure_topic(SETTINGS, "t")


# --------------------------------------------------------------------------- topics


class FakeAdmin:
    """Answers create_topics as a broker does: error code 36 for topics that exist."""

    def __init__(self, existing: set[str] = frozenset(), refuse: dict[str, int] | None = None) -> None:
        self.existing, self.refuse = set(existing), refuse or {}
        self.requests: list[dict[str, Any]] = []
        self.waited: list[str] = []
        self.closed = False

    def create_topics(self, new_topics: dict[str, Any], raise_errors: bool = True, **_: Any) -> dict[str, Any]:
        assert raise_errors is False
        self.requests.append(new_topics)
        answers = []
        for name in new_topics:
            code = self.refuse.get(name, 36 if name in self.existing else 0)
            if code == 0:
                self.existing.add(name)
            answers.append({"name": name, "error_code": code, "error_message": None})
        return {"topics": answers}

    def wait_for_topics(self, names: list[str], timeout_ms: int = 0) -> None:
        self.waited.extend(names)

    def close(self) -> None:
        self.closed = True


def test_ensure_topic_creates_once_then_leaves_it_alone() -> None:
    admin = FakeAdmin()
    assert ensure_topic(SETTINGS, "transactions", 6, 1, {"retention.ms": "3600000"}, admin=admin) is True
    assert admin.requests[0]["transactions"] == {
        "num_partitions": 6, "replication_factor": 1, "configs": {"retention.ms": "3600000"}
    }
    assert admin.waited == ["transactions"]  # leaders elected before anyone produces
    assert ensure_topic(SETTINGS, "transactions", admin=admin) is False
    assert not admin.closed  # an injected client stays open


def test_ensure_topics_reports_each_and_raises_on_a_real_refusal() -> None:
    admin = FakeAdmin(existing={"transactions"})
    created = ensure_topics(SETTINGS, ["transactions", TopicSpec("transactions.dlq", partitions=1)], admin=admin)
    assert created == {"transactions": False, "transactions.dlq": True}
    with pytest.raises(TopicError, match="InvalidReplicationFactorError"):
        ensure_topics(SETTINGS, [TopicSpec("x", replication=3)], admin=FakeAdmin(refuse={"x": 38}))
    with pytest.raises(ValueError):
        TopicSpec("x", partitions=0)


def test_ensure_topic_opens_and_closes_its_own_client(monkeypatch) -> None:
    admin = FakeAdmin()
    monkeypatch.setattr(topics_module, "admin_client", lambda settings: admin)
    assert ensure_topic(SETTINGS, "t") is True
    assert admin.closed


# --------------------------------------------------------------------------- the command


runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def invoke(*args: Any) -> Result:
    return runner.invoke(app, ["produce", *map(str, args)], env=WIDE)


@pytest.fixture
def fake_kafka(monkeypatch) -> dict[str, Any]:
    """The command with a MemoryProducer and a FakeAdmin in place of a cluster."""
    made: dict[str, Any] = {"admin": FakeAdmin(), "producers": []}

    def producer(settings: KafkaSettings, acks: Any = "all", compression: Any = None) -> MemoryProducer:
        fake = MemoryProducer()
        made["producers"].append((settings, acks, fake))
        made["compression"] = compression
        return fake

    monkeypatch.setattr(producer_module, "make_producer", producer)
    monkeypatch.setattr(topics_module, "admin_client", lambda settings: made["admin"])
    return made


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "give exactly one of --data FILE or --generate"),
        (("--generate", "--data", "x.csv"), "give exactly one of --data FILE or --generate"),
        (("--generate", "--acks", "2"), "--acks must be one of all, 1, 0"),
        (("--data", "no/such/file.csv"), "no such data file: no/such/file.csv"),
        (("--generate", "--compression", "brotli"), "Invalid value for '--compression'"),
        (("--data", "FIXTURES/canonical_sample.csv", "--format", "no-such-mapping.toml"), "no-such-mapping.toml"),
        (("--data", "FIXTURES/bank_mapping.toml"), "unknown file type"),
        (("--generate", "--rate", "inf"), "--rate must be a number"),
        (("--generate", "--rate", "nan"), "Invalid value for '--rate'"),
    ],
)
def test_argument_errors_are_one_line_with_exit_code_2(args: tuple[str, ...], message: str, fake_kafka) -> None:
    result = invoke(*(a.replace("FIXTURES", str(FIXTURES)) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert fake_kafka["producers"] == []  # nothing was sent


def test_bad_security_settings_in_the_environment_are_one_line_with_exit_code_2(fake_kafka) -> None:
    result = runner.invoke(app, ["produce", "--generate"], env={**WIDE, "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert result.exit_code == 2, result.output
    assert "Kafka settings: SASL_SSL needs sasl_mechanism" in result.output
    assert fake_kafka["producers"] == []


SECURITY_FLAGS = ("--security-protocol", "--sasl-mechanism", "--sasl-username", "--sasl-password", "--ssl-cafile",
                  "--ssl-certfile", "--ssl-keyfile")


def test_security_settings_are_not_accepted_on_the_command_line() -> None:
    produce = typer.main.get_command(app).commands["produce"]  # type: ignore[attr-defined]
    flags = {opt for param in produce.params for opt in param.opts}
    assert flags.isdisjoint(SECURITY_FLAGS), flags & set(SECURITY_FLAGS)
    result = invoke("--generate", "--security-protocol", "SSL")
    assert result.exit_code == 2 and "No such option" in result.output


def test_security_settings_come_from_the_environment_as_for_run(fake_kafka) -> None:
    env = {
        **WIDE, "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": "analyst", "FRAUDSTREAM_KAFKA_SASL_PASSWORD": "s3cret",
        "FRAUDSTREAM_KAFKA_SSL_CAFILE": "/etc/ca.pem",
    }
    result = runner.invoke(app, ["produce", "--generate", "--cards", "50", "--days", "1", "--limit", "3"], env=env)
    assert result.exit_code == 0, result.output
    (settings, _, _), = fake_kafka["producers"]
    assert (settings.security_protocol, settings.sasl_mechanism, settings.sasl_username) == ("SASL_SSL", "SCRAM-SHA-512", "analyst")
    assert settings.sasl_password == "s3cret" and settings.ssl_cafile == "/etc/ca.pem"
    assert "s3cret" not in result.output


def test_a_file_that_cannot_be_read_at_all_fails_before_kafka_is_contacted(tmp_path: Path, fake_kafka) -> None:
    data = tmp_path / "tx.csv.gz"
    data.write_bytes(b"not gzip at all")
    result = invoke("--data", data)
    assert result.exit_code == 2
    assert f"{data} is named .gz but is not gzip-compressed" in result.output
    assert fake_kafka["admin"].requests == [] and fake_kafka["producers"] == []


def test_an_unreachable_broker_is_one_line_with_a_hint(monkeypatch) -> None:
    def unreachable(settings: KafkaSettings) -> Any:
        raise KafkaUnavailable(settings.bootstrap)

    monkeypatch.setattr(topics_module, "admin_client", unreachable)
    result = invoke("--generate", "--cards", "50", "--days", "1", "--bootstrap", "127.0.0.1:1")
    assert result.exit_code == 3  # ServiceError
    assert "cannot reach Kafka at 127.0.0.1:1; start one with scripts/services/kafka start" in result.output
    assert "Traceback" not in result.output


def test_unreadable_rows_go_to_dead_letters_and_are_never_sent(tmp_path: Path, fake_kafka) -> None:
    data = tmp_path / "tx.jsonl"
    data.write_text(
        '{"transaction_id":"t1","card_id":"c1","amount":5}\n'
        "this is not json\n"
        '{"transaction_id":"t3","card_id":"c2","amount":-1}\n'  # invalid, but readable: the consumer judges it
        "[1,2]\n"
    )
    result = invoke("--data", data)
    assert result.exit_code == 0, result.output
    (_, _, fake), = fake_kafka["producers"]
    assert [json.loads(v)["transaction_id"] for _, _, v in fake.messages] == ["t1", "t3"]
    letters = list(read_dead_letters(tmp_path / "tx.jsonl.produce.dead_letters.jsonl"))
    assert [(letter.position, letter.raw) for letter in letters] == [("2", "this is not json"), ("4", "[1,2]")]
    assert all(letter.field is None and letter.reason for letter in letters)
    assert "2 sent, 0 failed, 2 unreadable" in result.output


def test_generate_sends_the_generator_rows_with_the_topic_created(fake_kafka) -> None:
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    result = invoke("--generate", "--cards", "50", "--days", "1", "--seed", "3", "--topic", "tx.test",
                    "--partitions", "2", "--acks", "1", "--bootstrap", "k1:9092,k2:9092", "--compression", "gzip")
    assert result.exit_code == 0, result.output
    expected = list(generate(GeneratorConfig(cards=50, days=1, seed=3)))
    (settings, acks, fake), = fake_kafka["producers"]
    assert settings.bootstrap == "k1:9092,k2:9092" and acks == 1 and fake_kafka["compression"] == "gzip"
    assert fake.closed
    assert [msgspec.json.decode(v) for _, _, v in fake.messages] == expected
    assert {t for t, _, _ in fake.messages} == {"tx.test"}
    assert fake_kafka["admin"].requests[0]["tx.test"]["num_partitions"] == 2
    assert f"{len(expected):,} sent, 0 failed" in result.output


def test_limit_caps_the_rows_sent(tmp_path: Path, fake_kafka) -> None:
    result = invoke("--generate", "--cards", "50", "--days", "2", "--limit", "17")
    assert result.exit_code == 0, result.output
    assert len(fake_kafka["producers"][0][2].messages) == 17


def test_any_failed_message_makes_the_exit_code_non_zero(monkeypatch, fake_kafka) -> None:
    def expire(topic: str, key: bytes | None, value: bytes) -> BaseException | None:
        return TimeoutError("expired in the accumulator") if key is not None and key.endswith(b"1") else None

    made: list[MemoryProducer] = []
    def producer(*args: Any, **kwargs: Any) -> MemoryProducer:
        made.append(MemoryProducer(expire))
        return made[-1]

    monkeypatch.setattr(producer_module, "make_producer", producer)
    result = invoke("--generate", "--cards", "50", "--days", "1")
    assert result.exit_code == 1, result.output
    failed = sum(1 for _, key, _ in made[0].messages if key.endswith(b"1"))
    assert failed > 0
    assert f"{failed:,} failed" in result.output
    reason = f"TimeoutError ×{failed:,} (e.g. TimeoutError: expired in the accumulator)"
    assert f"{failed:,} messages failed: {reason}" in result.output


def test_produce_is_listed_in_the_app() -> None:
    result = runner.invoke(app, ["--help"], env=WIDE)
    assert "produce" in result.output
