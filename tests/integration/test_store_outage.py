"""Elasticsearch stopped in the middle of a Kafka run and started again: every alert ends up stored
exactly once — the runner backs off and does not commit while the store is down."""

from __future__ import annotations

import csv
import subprocess
import threading
from pathlib import Path

import pytest
from support import BIN, service, wait_for

from fraudstream.services.stores.alerts import open_store

pytestmark = pytest.mark.integration


def cli(*args: str) -> None:
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_the_alert_store_going_down_mid_run_loses_and_doubles_nothing(kafka, tmp_path: Path, unique: str) -> None:
    es = service("elasticsearch", "start")
    url = f"elasticsearch://{es.removeprefix('http://')}?prefix=outage-{unique}"
    cli("generate", "--out", str(tmp_path / "history.csv"), "--cards", "300", "--days", "6", "--seed", "31")
    cli("train", "--data", str(tmp_path / "history.csv"), "--model-out", str(tmp_path / "model"))
    cli("generate", "--out", str(tmp_path / "stream.jsonl"), "--cards", "1500", "--days", "5", "--seed", "32")
    topic, partitions = f"tx-{unique}", 2
    # Live traffic (about 15,000 rows at 200/s: 75 s) so the outage lands while alerts are being written. It spans
    # well over a minute so that, even on a loaded machine where the runner takes long to start and store its first
    # alerts, production is still going when the store goes down (asserted below: otherwise nothing is proved).
    producing = threading.Thread(target=cli, args=("produce", "--data", str(tmp_path / "stream.jsonl"), "--topic", topic,
                                                   "--bootstrap", kafka, "--partitions", str(partitions), "--rate", "200"))
    producing.start()
    log = tmp_path / "runner.log"
    errors = log.open("wb")  # noqa: SIM115 (closed once the runner has ended)
    runner = subprocess.Popen(
        [str(BIN), "run", "--source", "kafka", "--bootstrap", kafka, "--topic", topic, "--group", f"g-{unique}",
         "--scored-topic", f"{topic}.scored", "--dlq-topic", f"{topic}.dlq", "--model", str(tmp_path / "model"),
         "--store", url, "--state-dir", str(tmp_path / "state"), "--no-live-view", "--stop-when-idle", "8",
         "--session-timeout", "6", "--batch-size", "300", "--quiet-after", "10"],
        stdout=subprocess.DEVNULL, stderr=errors,
    )
    store = open_store(url)
    try:
        def stored_some() -> bool:
            store.refresh()
            return store.count_alerts() > 5

        wait_for(stored_some, "alerts in Elasticsearch before the outage")
        assert producing.is_alive(), "all produced before the outage: the test would prove nothing"
        before = len(log.read_bytes())
        service("elasticsearch", "stop")
        # The runner meets the outage (the store's retries say so) and waits for it, alive.
        wait_for(lambda: b"retrying in" in log.read_bytes()[before:] or runner.poll() is not None,
                 "the runner to meet the outage")
        assert runner.poll() is None, f"the runner died with the store down: {log.read_text(errors='replace')}"
    finally:
        service("elasticsearch", "start")
    producing.join(timeout=300)
    code = runner.wait(timeout=300)
    errors.close()
    assert code == 0, log.read_text(errors="replace")

    cli("score", "--data", str(tmp_path / "stream.jsonl"), "--model", str(tmp_path / "model"),
        "--out", str(tmp_path / "scores.csv"))
    with open(tmp_path / "scores.csv", newline="") as handle:
        expected = {r["transaction_id"]: float(r["score"]) for r in csv.DictReader(handle) if r["alert"] == "1"}
    store = open_store(url)
    try:
        store.refresh()
        page = store.search(limit=10_000)
        got = {a.transaction_id: a.score for a in page.alerts}
        assert page.total == len(expected) == len(got)  # exactly once
        assert got.keys() == expected.keys()
        assert all(got[k] == pytest.approx(expected[k], abs=1e-12) for k in got)
    finally:
        drop = getattr(store, "drop", None)
        if drop is not None:
            drop()
        store.close()
