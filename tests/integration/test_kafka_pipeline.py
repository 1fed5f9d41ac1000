"""The Kafka pipeline against a real broker: produce → run --source kafka → alert store and topics.

Every test compares with plain `fraudstream score` on the same file: whatever the number of partitions and
runners, the Kafka runner computes card features over each card's traffic and merchant features over each
merchant's (its merchant stage), in the file's order, so the alerts must be the same ones with the same
scores — after malformed messages, SIGKILLs, a rebalance, or a broker going down.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support import BIN, SERVICE_DEADLINE_S, consume_all, group_owners, messy_copy, topic_size, wait_for

from fraudstream.services.kafka.producer import produce_raw
from fraudstream.services.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration

MALFORMED: list[tuple[str, bytes, str]] = [
    ("bad json", b'{"transaction_id": "m1", "amount": ', "<record>"),
    ("not an object", b"[1, 2, 3]", "<record>"),
    ("missing fields", b'{"transaction_id": "m3"}', "timestamp"),
    ("negative amount", json.dumps({"transaction_id": "m4", "timestamp": 1767225600000, "card_id": "c", "merchant_id": "m", "amount": -5}).encode(), "amount"),
    ("wrong type", json.dumps({"transaction_id": "m5", "timestamp": 1767225600000, "card_id": "c", "merchant_id": "m", "amount": "lots"}).encode(), "amount"),
    ("huge string", json.dumps({"transaction_id": "m6", "timestamp": 1767225600000, "card_id": "c" * 200_000, "merchant_id": "m", "amount": 5}).encode(), "card_id"),
    ("not utf-8", b"\xff\xfe\x00garbage", "<record>"),
]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"fraudstream {' '.join(args)} failed:\n{done.stderr}"
    return done


def runner_args(bootstrap: str, topic: str, group: str, store: Path, state: Path, model: Path, idle: float = 4.0) -> list[str]:
    return [
        "run", "--source", "kafka", "--model", str(model), "--bootstrap", bootstrap, "--topic", topic, "--group", group,
        "--scored-topic", f"{topic}.scored", "--dlq-topic", f"{topic}.dlq", "--store", str(store),
        "--state-dir", str(state), "--no-live-view", "--batch-size", "500", "--stop-when-idle", str(idle),
        "--session-timeout", "6",
        # A partition counts as quiet (no longer holding the merchant stage back) only after 10 s without data:
        # a producer stalled that long on a loaded machine would otherwise make its next rows late.
        "--quiet-after", "10",
    ]


def alerts_in(store: Path) -> dict[str, float]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT transaction_id, score FROM alerts").fetchall())


def expected_alerts(data: Path, model: Path, out: Path) -> dict[str, float]:
    cli("score", "--data", str(data), "--model", str(model), "--out", str(out))
    with open(out, newline="") as handle:
        return {r["transaction_id"]: float(r["score"]) for r in csv.DictReader(handle) if r["alert"] == "1"}


def assert_same_alerts(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys(), (
        f"{len(got.keys() - expected.keys())} unexpected, {len(expected.keys() - got.keys())} missing alerts"
    )
    assert all(got[k] == pytest.approx(expected[k], abs=1e-12) for k in got)


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> tuple[Path, Path, set[str]]:
    root = tmp_path_factory.mktemp("kafka")
    cli("generate", "--out", str(root / "history.csv"), "--cards", "400", "--days", "8", "--seed", "21")
    cli("train", "--data", str(root / "history.csv"), "--model-out", str(root / "model"))
    cli("generate", "--out", str(root / "stream.jsonl"), "--cards", "2500", "--days", "6", "--seed", "22")
    ids = {json.loads(line)["transaction_id"] for line in (root / "stream.jsonl").read_text().splitlines()}
    return root / "stream.jsonl", root / "model", ids


def produce(bootstrap: str, topic: str, data: Path, partitions: int, replication: int = 1, rate: str = "0") -> None:
    cli("produce", "--data", str(data), "--topic", topic, "--bootstrap", bootstrap, "--partitions", str(partitions),
        "--replication", str(replication), "--rate", rate)


@pytest.mark.parametrize("partitions", [1, 4])
def test_round_trip_scores_every_valid_message_once_and_dead_letters_the_rest(
    kafka, workload, tmp_path, unique, partitions
) -> None:
    """With 4 partitions this failed before the merchant stage: merchant state kept per card partition gave
    other merchant features than training's (the runner then equalled the removed ``score --partitions 4``)."""
    data, model, ids = workload
    topic = f"tx-{unique}"
    produce(kafka, topic, data, partitions)
    sent = produce_raw([(b"bad", value) for _, value, _ in MALFORMED], KafkaSettings(bootstrap=kafka), topic)
    assert sent.sent == len(MALFORMED) and sent.failed == 0
    store = tmp_path / "alerts.db"
    cli(*runner_args(kafka, topic, f"g-{unique}", store, tmp_path / "state", model))

    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))
    scored = [json.loads(m.value) for m in consume_all(kafka, f"{topic}.scored")]
    assert sorted(s["transaction_id"] for s in scored) == sorted(ids)  # every valid one, exactly once
    with open(tmp_path / "scores.csv", newline="") as handle:  # every score, not only the alerts': same features
        expected_scores = {r["transaction_id"]: float(r["score"]) for r in csv.DictReader(handle)}
    assert_same_alerts({s["transaction_id"]: s["score"] for s in scored}, expected_scores)
    dlq = consume_all(kafka, f"{topic}.dlq")
    assert sorted(m.value for m in dlq) == sorted(value for _, value, _ in MALFORMED)
    for message in dlq:
        headers = dict(message.headers)
        expected_field = next(f for _, v, f in MALFORMED if v == message.value)
        assert headers["error.field"].decode() == expected_field
        assert headers["error.reason"] and headers["source.topic"].decode() == topic
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == len(MALFORMED)


def test_retries_reused_ids_impossible_times_and_disorder_are_handled_as_score_handles_them(
    kafka, workload, tmp_path, unique
) -> None:
    _, model, _ = workload
    clean, data, partitions = tmp_path / "clean.csv", tmp_path / "messy.csv", 4
    cli("generate", "--out", str(clean), "--cards", "600", "--days", "4", "--seed", "23")
    counts = messy_copy(clean, data)
    topic = f"tx-{unique}"
    produce(kafka, topic, data, partitions)  # keyed by card: each card's rows keep their file order
    store = tmp_path / "alerts.db"
    cli(*runner_args(kafka, topic, f"g-{unique}", store, tmp_path / "state", model))

    expected = expected_alerts(data, model, tmp_path / "scores.csv")
    assert len(expected) > 5
    assert_same_alerts(alerts_in(store), expected)
    with open(tmp_path / "scores.csv", newline="") as handle:
        admitted = sorted(r["transaction_id"] for r in csv.DictReader(handle))
    scored = [json.loads(m.value) for m in consume_all(kafka, f"{topic}.scored")]
    assert sorted(s["transaction_id"] for s in scored) == admitted  # retries not scored again
    fields = [dict(m.headers)["error.field"].decode() for m in consume_all(kafka, f"{topic}.dlq")]
    assert sorted(fields) == ["timestamp"] * counts["impossible"] + ["transaction_id"] * counts["reused"]


def _count(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=1) as db:
            return db.execute("SELECT count(*) FROM alerts").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_at_random_moments_loses_and_doubles_nothing(kafka, workload, tmp_path, unique) -> None:
    data, model, ids = workload
    topic, partitions = f"tx-{unique}", 3
    # Produce live (about 25 s) so that every kill lands while there is work in flight.
    producing = threading.Thread(target=produce, args=(kafka, topic, data, partitions, 1, "1200"))
    producing.start()
    store = tmp_path / "alerts.db"
    args = runner_args(kafka, topic, f"g-{unique}", store, tmp_path / "state", model)
    rng = random.Random(7)
    for kill in range(3):
        proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = _count(store)
        wait_for(lambda: _count(store) > before, f"runner {kill + 1} to store alerts")  # it has joined and is writing
        time.sleep(rng.uniform(0.0, 1.0))  # not a synchronisation: it picks a random moment of the run to kill
        assert proc.poll() is None, f"runner exited before kill {kill + 1}: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)
    producing.join()
    assert last.returncode == 0, last.stderr
    if _count(store) < 1:
        pytest.fail("no alerts at all")
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))
    scored = {json.loads(m.value)["transaction_id"] for m in consume_all(kafka, f"{topic}.scored")}
    assert scored == ids  # at least once on the topic; the alert store is exactly once


def test_a_runner_started_before_the_producer_leaves_the_partitions_to_the_producer(kafka, workload, tmp_path, unique) -> None:
    """A runner subscribing to a topic that does not exist yet once had the broker create it with its default of
    one partition; the producer then sent everything there, and the alerts differed from ``score --partitions 3``
    (a SIGKILL run on a loaded machine, where the runner happened to start first, failed that way)."""
    data, model, _ = workload
    topic, partitions = f"tx-{unique}", 3
    store = tmp_path / "alerts.db"
    errors = open(tmp_path / "runner.err", "wb")  # noqa: SIM115 (closed once the runner has ended)
    runner = subprocess.Popen([str(BIN), *runner_args(kafka, topic, f"g-{unique}", store, tmp_path / "state", model)],
                              stdout=subprocess.DEVNULL, stderr=errors)
    try:
        # The runner has got as far as its source topic: it either waits for it, or (the bug) has it created.
        wait_for(lambda: b"does not exist yet" in (tmp_path / "runner.err").read_bytes() or _topic_exists(kafka, topic),
                 "the runner to look for its source topic")
        produce(kafka, topic, data, partitions)
        assert runner.wait(timeout=600) == 0, (tmp_path / "runner.err").read_text(errors="replace")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        errors.close()
    assert _partitions_of(kafka, topic) == partitions
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))


def _topic_exists(bootstrap: str, topic: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return topic in admin.list_topics()
    finally:
        admin.close()


def _partitions_of(bootstrap: str, topic: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (description,) = admin.describe_topics([topic])
        return len(description["partitions"])
    finally:
        admin.close()


def test_a_second_runner_takes_over_when_one_is_killed(kafka, workload, tmp_path, unique) -> None:
    data, model, _ = workload
    topic, partitions, group = f"tx-{unique}", 4, f"g-{unique}"
    # Produce live (about 15 s), so that there is work left for both runners while they share the topic.
    producing = threading.Thread(target=produce, args=(kafka, topic, data, partitions, 1, "1200"))
    producing.start()
    wait_for(lambda: topic_size(kafka, topic), "the first messages on the topic")
    store, state = tmp_path / "alerts.db", tmp_path / "state"
    # Each runner under a client id of its own: the group's description then says who owns what.
    first_env, second_env = ({**os.environ, "FRAUDSTREAM_KAFKA_CLIENT_ID": f"{name}-{unique}"} for name in ("first", "second"))
    first_errors = open(tmp_path / "first.err", "wb")  # noqa: SIM115 (closed once the runner is dead)
    first = subprocess.Popen([str(BIN), *runner_args(kafka, topic, group, store, state, model, idle=20)],
                             stdout=subprocess.DEVNULL, stderr=first_errors, env=first_env)
    second = None
    try:
        # The first runner owns every partition and has stored results...
        wait_for(lambda: group_owners(kafka, group) == {f"first-{unique}": set(range(partitions))},
                 "the first runner to own every partition")
        wait_for(lambda: _count(store), "the first runner's first alerts")
        second = subprocess.Popen([str(BIN), *runner_args(kafka, topic, group, store, state, model, idle=20)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=second_env)

        # ...then shares them with the second: it still owns some when it is killed.
        def shared_by_two() -> dict[str, set[int]] | None:
            owners = group_owners(kafka, group)
            return owners if owners is not None and len(owners) == 2 and all(owners.values()) else None

        shared = wait_for(shared_by_two, "the two runners to share the partitions")
        assert shared.keys() == {f"first-{unique}", f"second-{unique}"}, shared
        assert first.poll() is None, f"the first runner ended before it could be killed: {(tmp_path / 'first.err').read_text()}"
        first.send_signal(signal.SIGKILL)
        first.wait()
        first_errors.close()
        producing.join()
        assert second.wait(timeout=300) == 0, second.stderr.read().decode()
    finally:
        for runner in (first, second):
            if runner is not None and runner.poll() is None:
                runner.kill()
                runner.wait()
        producing.join()
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))


def test_a_broker_going_down_mid_run_loses_nothing(kafka_cluster, workload, tmp_path, unique) -> None:
    from support import service

    data, model, ids = workload
    topic, partitions = f"tx-{unique}", 3
    store = tmp_path / "alerts.db"
    # 600/s: production lasts about 25 s, so it is still going when the runner (which first creates its
    # by-merchant topic on the cluster) has stored its first alerts on a loaded machine.
    producing = threading.Thread(target=produce, args=(kafka_cluster, topic, data, partitions, 3, "600"))
    producing.start()
    wait_for(lambda: topic_size(kafka_cluster, topic), "the first messages on the topic")
    runner = subprocess.Popen(
        [str(BIN), *runner_args(kafka_cluster, topic, f"g-{unique}", store, tmp_path / "state", model, idle=8), "--replication", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_for(lambda: _count(store), "the runner's first alerts")  # it has joined and is writing
    assert producing.is_alive(), "all produced before the broker went down: the test would prove nothing"
    service("kafka", "stop", "--node", "2")
    try:
        producing.join(timeout=300)
        assert runner.wait(timeout=300) == 0, runner.stderr.read().decode()
    finally:
        service("kafka", "start", "--node", "2")
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))
    scored = {json.loads(m.value)["transaction_id"] for m in consume_all(kafka_cluster, f"{topic}.scored")}
    assert scored == ids


def test_sigterm_stops_cleanly_and_metrics_are_served(kafka, workload, tmp_path, unique) -> None:
    import socket
    import urllib.request

    data, model, _ = workload
    topic, partitions = f"tx-{unique}", 2
    produce(kafka, topic, data, partitions)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store, state = tmp_path / "alerts.db", tmp_path / "state"
    args = [a for a in runner_args(kafka, topic, f"g-{unique}", store, state, model) if a not in ("--stop-when-idle", "4.0")]
    # Its stderr goes to a file, never to a pipe nobody reads while it runs: on a loaded machine kafka-python's
    # warnings and the status lines can fill a pipe's 64 KB and block the runner on a log write — the likely cause
    # of two failures under load ("no scored metrics in 180 s"); the log also says why, if it fails again.
    log = tmp_path / "runner.log"
    with log.open("w") as err:
        runner = subprocess.Popen([str(BIN), *args, "--metrics-port", str(port)], stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        def scored_metrics() -> str | None:
            if runner.poll() is not None:  # a runner that died says why, rather than a 180 s wait
                pytest.fail(f"the runner exited with {runner.returncode}: {log.read_text(errors='replace')[-4000:]}")
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
            except OSError:
                return None
            return metrics if "fraudstream_scored_total" in metrics and "fraudstream_scored_total 0.0" not in metrics else None

        metrics = wait_for(scored_metrics, "metrics that count scored messages")
        assert 'fraudstream_lag{partition="' in metrics
        assert "fraudstream_event_to_decision_seconds_bucket" in metrics
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=SERVICE_DEADLINE_S) == 0
        assert "stopped after" in " ".join(log.read_text(errors="replace").split())
    finally:
        if runner.poll() is None:
            runner.kill()
    # What it committed and snapshotted on the way out is a correct place to carry on from.
    cli(*runner_args(kafka, topic, f"g-{unique}", store, state, model))
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))


def test_a_restart_with_nothing_left_to_read_stops_when_idle(kafka, workload, tmp_path, unique) -> None:
    """Every offset already committed: no fetch ever reports the partitions' ends, so the runner must ask the
    broker for them, or --stop-when-idle never fires (it hung CI once)."""
    data, model, _ = workload
    topic, partitions = f"tx-{unique}", 2
    produce(kafka, topic, data, partitions)
    store, state = tmp_path / "alerts.db", tmp_path / "state"
    cli(*runner_args(kafka, topic, f"g-{unique}", store, state, model))
    first = alerts_in(store)
    started = time.monotonic()
    cli(*runner_args(kafka, topic, f"g-{unique}", store, state, model), timeout=120)
    assert time.monotonic() - started < 60
    assert alerts_in(store) == first and first


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "first contact"])
def test_a_store_that_never_answers_neither_holds_the_runner_nor_loses_anything(kafka, workload, tmp_path, unique, how) -> None:
    """A mistyped --store: a signal stops the runner at once, or the first-contact wait ends it with one error
    line; either way nothing is lost: a rerun with a store that answers ends with every alert."""
    from support import free_port

    data, model, _ = workload
    topic, partitions, group = f"tx-{unique}", 2, f"g-{unique}"
    produce(kafka, topic, data, partitions)
    args = [a if a != str(tmp_path / "alerts.db") else f"elasticsearch://127.0.0.1:{free_port()}"
            for a in runner_args(kafka, topic, group, tmp_path / "alerts.db", tmp_path / "state", model, idle=60)]
    if how == "first contact":
        args += ["--store-first-contact", "5"]
    log = tmp_path / "runner.log"
    with log.open("wb") as out:
        runner = subprocess.Popen([str(BIN), *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: b"retrying in" in log.read_bytes() or runner.poll() is not None, "the runner to retry the store")
        assert runner.poll() is None, log.read_text(errors="replace")
        if how == "first contact":
            code = runner.wait(timeout=SERVICE_DEADLINE_S)
            errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
            assert code != 0 and len(errors) == 1 and "has not answered in the 5 s since the run started" in errors[0]
        else:
            signalled = time.monotonic()
            runner.send_signal(getattr(signal, how))
            code = runner.wait(timeout=SERVICE_DEADLINE_S)
            took = time.monotonic() - signalled
            assert code == 0 and took < 5.0, f"{how}: exit {code} after {took:.1f} s\n{log.read_text(errors='replace')}"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert "Traceback" not in log.read_text(errors="replace")
    # Offsets may have moved where nothing had to be stored (card-stage batches without dead letters, merchant-stage
    # batches whose transactions the merge still held): what matters is that nothing was lost. The same group and
    # state directory, now with a store that answers, end with exactly the alerts of `score`.
    store = tmp_path / "alerts.db"
    cli(*runner_args(kafka, topic, group, store, tmp_path / "state", model))
    assert_same_alerts(alerts_in(store), expected_alerts(data, model, tmp_path / "scores.csv"))
