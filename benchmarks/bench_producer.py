"""How fast `fraudstream produce` sends transactions to a real Kafka broker, and how exactly it paces.

Rows come from the generator (made before the clock starts); each run sends them all with
``produce_rows`` — JSON encoding, keying by card, delivery callbacks and the final flush included —
to a fresh 4-partition topic. Median of 3 runs for acks=all (idempotent), acks=1, and acks=all with
gzip; then one paced run, to compare the rate asked for with the rate the broker's timestamps show.
Not pinned to one core: kafka-python sends from a second thread (compression, network) while the
first encodes and queues, and the broker needs its own CPU. Writes benchmarks/results/producer.json.

    .venv/bin/python benchmarks/bench_producer.py [--quick] [--bootstrap HOST:PORT]

Without --bootstrap, the broker is started with ``scripts/services/kafka start`` (a no-op if it
runs). With no broker to be had, it says why and exits 0 without writing results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, write_results  # noqa: E402

from fraudstream.services.kafka.producer import BATCH_SIZE, LINGER_MS, encode_row, produce_rows  # noqa: E402
from fraudstream.services.kafka.settings import KafkaSettings  # noqa: E402
from fraudstream.services.kafka.topics import KafkaUnavailable, admin_client, ensure_topic  # noqa: E402
from fraudstream.services.sources.generator import GeneratorConfig, generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "services" / "kafka"
PARTITIONS = 4


def broker(bootstrap: str | None) -> str | None:
    """The bootstrap address to use, or None (after saying why) when there is no broker."""
    if bootstrap:
        return bootstrap
    if not SCRIPT.exists():
        print(f"skipped: no Kafka broker (no {SCRIPT.relative_to(ROOT)}; pass --bootstrap HOST:PORT)")
        return None
    done = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0 or not done.stdout.strip():
        print(f"skipped: scripts/services/kafka start failed:\n{done.stderr.strip()[-2000:]}")
        return None
    return done.stdout.strip().splitlines()[-1]


def fresh_topic(settings: KafkaSettings, label: str) -> str:
    topic = f"bench-producer-{label}-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings, topic, PARTITIONS, 1)
    return topic


def throughput(settings: KafkaSettings, rows: list[dict[str, Any]], acks: str, compression: str | None) -> float:
    """Acknowledged messages per second for one run of every row to a new topic."""
    topic = fresh_topic(settings, f"acks{acks}")
    stats = produce_rows(rows, settings, topic, acks=acks, compression=compression)
    if stats.failed:
        raise SystemExit(f"{stats.failed:,} messages failed: {stats.describe_errors()}")
    return stats.rate()


def paced(settings: KafkaSettings, rows: list[dict[str, Any]], rate: float) -> dict[str, float]:
    """Send ``rows`` at ``rate`` and read the broker's timestamps back."""
    from kafka import KafkaConsumer, TopicPartition

    topic = fresh_topic(settings, "paced")
    stats = produce_rows(rows, settings, topic, rate=rate)
    consumer = KafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        stamps: list[int] = []
        deadline = time.monotonic() + 60
        while len(stamps) < stats.sent and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                stamps.extend(r.timestamp for r in records)
    finally:
        consumer.close()
    stamps.sort()
    span_s = (stamps[-1] - stamps[0]) / 1000
    gaps = [(b - a) for a, b in zip(stamps, stamps[1:])]
    return {
        "asked_per_s": rate,
        "messages": stats.sent,
        "expected_span_s": (stats.sent - 1) / rate,
        "broker_span_s": span_s,
        "achieved_per_s": (len(stamps) - 1) / span_s if span_s else 0.0,
        "error_pct": ((len(stamps) - 1) / span_s / rate - 1) * 100 if span_s else 0.0,
        "gap_p50_ms": statistics.median(gaps),
        "gap_max_ms": max(gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each, for a smoke run")
    parser.add_argument("--bootstrap", help="an existing broker HOST:PORT (default: start scripts/services/kafka)")
    args = parser.parse_args()
    bootstrap = broker(args.bootstrap)
    if bootstrap is None:
        return
    settings = KafkaSettings(bootstrap=bootstrap)
    try:
        admin_client(settings).close()
    except KafkaUnavailable as error:
        print(f"skipped: {error}")
        return
    cards, days, repeats = (1_000, 7, 1) if args.quick else (5_000, 30, 3)
    rows = list(generate(GeneratorConfig(cards=cards, days=days, seed=3)))
    if not args.quick:
        rows = rows[:200_000]
    figures: dict[str, Any] = {
        "bootstrap": bootstrap, "messages": len(rows), "partitions": PARTITIONS,
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),  # other work on the machine skews the figures
        "linger_ms": LINGER_MS, "batch_size": BATCH_SIZE, "repeats": repeats,
        "avg_value_bytes": round(statistics.fmean(len(encode_row(r)[1]) for r in rows[:1000])),
    }
    variants = (("acks_all", "all", None), ("acks_1", "1", None), ("acks_all_gzip", "all", "gzip"))
    for label, acks, compression in variants:
        median, runs = median_of(repeats, lambda: throughput(settings, rows, acks, compression))
        figures[label] = {"msgs_per_s": median, "runs": runs}
    rate = 2_000.0 if args.quick else 5_000.0
    figures["paced"] = paced(settings, rows[: int(rate * (2 if args.quick else 5)) + 1], rate)

    path = write_results("producer", figures)
    print(f"{len(rows):,} messages to {PARTITIONS} partitions at {bootstrap}, median of {repeats}")
    for label in ("acks_all", "acks_1", "acks_all_gzip"):
        runs = ", ".join(f"{r:,.0f}" for r in figures[label]["runs"])
        print(f"{label:<15} {figures[label]['msgs_per_s']:>10,.0f} msgs/s   ({runs})")
    p = figures["paced"]
    print(
        f"paced at {p['asked_per_s']:,.0f}/s: broker saw {p['achieved_per_s']:,.1f}/s ({p['error_pct']:+.2f} %), "
        f"span {p['broker_span_s']:.3f} s for {p['expected_span_s']:.3f} s expected, "
        f"gaps p50 {p['gap_p50_ms']:.0f} ms, max {p['gap_max_ms']:.0f} ms"
    )
    print(f"→ {path}")


if __name__ == "__main__":
    main()
