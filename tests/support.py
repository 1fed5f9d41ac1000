"""Helpers shared by the test suites (imported as ``support``): transaction factories, the CLI, services."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fraudstream.model.schema import Transaction, validate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("fraudstream")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday
HOUR = 3_600_000

BASE: dict[str, Any] = {
    "transaction_id": "t",
    "card_id": "card-1",
    "merchant_id": "m-1",
    "amount": 20.0,
    "currency": "USD",
    "merchant_category": "grocery",
    "channel": "card_present",
    "country": "US",
    "card_lat": 40.7128,
    "card_lon": -74.0060,
    "merchant_lat": 40.7128,
    "merchant_lon": -74.0060,
}


def make_txn(n: int = 0, t_ms: int = T0, **fields: Any) -> Transaction:
    """A valid transaction with id ``t<n>`` at ``t_ms``; ``fields`` override the defaults."""
    return validate({**BASE, "transaction_id": f"t{n}", "timestamp": t_ms, **fields})


def service(name: str, *args: str, timeout: float = 600) -> str:
    """Run ``scripts/services/<name> <args>``; return its last stdout line (e.g. the address), or ""."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "services" / name), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services/{name} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def consume_all(bootstrap: str, topic: str) -> list:
    """Every message of Kafka ``topic`` from the beginning to its current end, partition by partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        messages: list = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                messages.extend(records)
        return messages
    finally:
        consumer.close()
