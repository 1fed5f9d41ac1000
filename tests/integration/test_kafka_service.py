"""scripts/services/kafka runs a real Kafka broker (and a three-node cluster) that works.

Starts the services through the script itself, talks to them with kafka-python, and stops
what it started (a broker that was already running before the test is left running).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SERVICE_DEADLINE_S

kafka = pytest.importorskip("kafka")
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "services" / "kafka"


def kafka_script(*args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the service script from an unrelated directory (it must cd to the repo itself)."""
    proc = subprocess.run(
        [str(SCRIPT), *args],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"kafka {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip()


def running(*args: str) -> bool:
    return kafka_script("status", *args, check=False, timeout=SERVICE_DEADLINE_S).returncode == 0


def new_topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int, replication: int, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-kafka-service")
    try:
        admin.create_topics(
            [NewTopic(name, partitions, replication, topic_configs=dict(configs))],
            timeout_ms=30_000,
        )
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while True:  # wait until every partition has a leader
            desc = admin.describe_topics([name])[0]
            parts = desc.get("partitions") or []
            if desc["error_code"] == 0 and len(parts) == partitions and all(p["leader_id"] >= 0 for p in parts):
                return
            assert time.monotonic() < deadline, f"topic {name} has no leaders: {desc}"
            time.sleep(0.2)
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        retries=20,
        retry_backoff_ms=200,
        request_timeout_ms=15_000,
        client_id="test-kafka-service",
    )
    try:
        futures = [producer.send(topic, key=v.encode(), value=v.encode()) for v in values]
        producer.flush(timeout=SERVICE_DEADLINE_S)
        for f in futures:
            f.get(timeout=SERVICE_DEADLINE_S)  # raises if the broker did not acknowledge with acks=all
    finally:
        producer.close(timeout=10)


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = SERVICE_DEADLINE_S) -> list[str]:
    """Read every partition of ``topic`` from the beginning, without a consumer group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        client_id="test-kafka-service",
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            assert partitions or time.monotonic() < deadline, f"no metadata for {topic}"
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        got: list[str] = []
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend(r.value.decode() for r in batch)
        return got
    finally:
        consumer.close()


def consume_group(bootstrap: str, topic: str, group: str, expected: int, timeout_s: float = SERVICE_DEADLINE_S) -> list[str]:
    """Consume ``expected`` records with a consumer group and commit them."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="test-kafka-service",
    )
    try:
        got: list[str] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(r.value.decode() for r in batch)
        consumer.commit()
        return got
    finally:
        consumer.close()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def single_broker() -> Iterator[str]:
    was_running = running()
    t0 = time.monotonic()
    first = kafka_script("start")
    print(f"single-node start: {time.monotonic() - t0:.1f}s (already running: {was_running})")
    bootstrap = last_line(first.stdout)
    try:
        yield bootstrap
    finally:
        if not was_running:
            kafka_script("stop", "--brokers", "1", check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    was_running = running("--brokers", "3")
    t0 = time.monotonic()
    proc = kafka_script("start", "--brokers", "3")
    print(f"3-node start: {time.monotonic() - t0:.1f}s (already running: {was_running})")
    bootstrap = last_line(proc.stdout)
    try:
        yield bootstrap
    finally:
        if was_running:
            kafka_script("start", "--brokers", "3", check=False)  # leave it as we found it
        else:
            kafka_script("stop", "--brokers", "3", check=False)


# ----------------------------------------------------------------------------- tests


def test_help_and_bad_arguments() -> None:
    help_ = kafka_script("--help", timeout=30)
    for word in ("install", "start", "stop", "status", "--brokers", "--node", "KAFKA_PORT", "FRAUDSTREAM_CACHE"):
        assert word in help_.stdout
    bad = kafka_script("start", "--brokers", "2", check=False, timeout=30)
    assert bad.returncode != 0 and "--brokers must be 1 or 3" in bad.stderr
    bad = kafka_script("frobnicate", check=False, timeout=30)
    assert bad.returncode != 0 and "unknown command" in bad.stderr


def test_install_is_a_noop_when_cached() -> None:
    t0 = time.monotonic()
    proc = kafka_script("install", timeout=600)
    assert "already" in proc.stderr or "installed" in proc.stderr
    t1 = time.monotonic()
    kafka_script("install", timeout=SERVICE_DEADLINE_S)
    assert time.monotonic() - t1 < 5, "a cached install should not call Maven"
    print(f"install: {t1 - t0:.2f}s, cached install: {time.monotonic() - t1:.2f}s")


def test_single_broker_start_is_idempotent_and_reports_status(single_broker: str) -> None:
    host, _, port = single_broker.partition(":")
    assert host == "127.0.0.1" and port == os.environ.get("KAFKA_PORT", "9092")
    pidfile = REPO / "var" / "services" / "kafka" / "single" / "node-1" / "kafka.pid"
    pid = pidfile.read_text().strip() if pidfile.exists() else None

    again = kafka_script("start")
    assert last_line(again.stdout) == single_broker
    assert "already running" in again.stderr
    if pid is not None and "KAFKA_VAR_DIR" not in os.environ:
        assert pidfile.read_text().strip() == pid, "a second start must not restart the broker"

    status = kafka_script("status")
    assert last_line(status.stdout) == single_broker
    assert "answering" in status.stdout


def test_single_broker_produces_and_consumes(single_broker: str) -> None:
    topic = new_topic_name("it-single")
    create_topic(single_broker, topic, partitions=2, replication=1)
    values = [f"txn-{i}" for i in range(20)]
    produce(single_broker, topic, values)
    assert sorted(read_all(single_broker, topic, len(values))) == sorted(values)
    # A consumer group works too (group.initial.rebalance.delay.ms=0 keeps this quick).
    assert sorted(consume_group(single_broker, topic, f"g-{topic}", len(values))) == sorted(values)


def test_cluster_survives_a_broker_failure(cluster: str) -> None:
    assert cluster.count(",") == 2
    topic = new_topic_name("it-cluster")
    group = f"g-{topic}"
    create_topic(cluster, topic, partitions=3, replication=3, **{"min.insync.replicas": "2"})

    before = [f"before-{i}" for i in range(30)]
    produce(cluster, topic, before)
    # Consume and commit the first batch with a group (this also creates __consumer_offsets
    # with replication factor 3 while all three brokers are up).
    assert sorted(consume_group(cluster, topic, group, len(before))) == sorted(before)

    kafka_script("stop", "--node", "2")
    status = kafka_script("status", "--brokers", "3", check=False)
    assert status.returncode != 0, status.stdout
    assert "node 2: stopped" in status.stdout
    assert kafka_script("status", "--node", "1", check=False).returncode == 0

    after = [f"after-{i}" for i in range(30)]
    produce(cluster, topic, after)  # acks=all with 2 of 3 replicas in sync (min.insync.replicas=2)

    # Nothing lost: everything is readable from the two survivors, and the group resumes
    # from its committed offsets.
    assert sorted(read_all(cluster, topic, len(before) + len(after))) == sorted(before + after)
    assert sorted(consume_group(cluster, topic, group, len(after))) == sorted(after)

    kafka_script("start", "--node", "2")
    assert kafka_script("status", "--brokers", "3", check=False).returncode == 0
    # Node 2 catches up and rejoins the in-sync replicas of every partition.
    admin = KafkaAdminClient(bootstrap_servers=cluster, client_id="test-kafka-service")
    try:
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while True:
            parts = admin.describe_topics([topic])[0]["partitions"]
            if all(sorted(p["isr_nodes"]) == [1, 2, 3] for p in parts):
                break
            assert time.monotonic() < deadline, f"node 2 did not rejoin the ISR: {parts}"
            time.sleep(0.5)
    finally:
        admin.close()
    assert sorted(read_all(cluster, topic, len(before) + len(after))) == sorted(before + after)
