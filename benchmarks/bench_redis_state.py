"""Benchmark the Redis state store: optimistic transactions under a skewed merchant distribution, and bytes per key.

Contention: P processes x T threads call ``RedisStateStore.features`` one event at a time (what API
workers do); a share of all events (0, 30 % or 60 %) goes to one merchant, the rest spread evenly over
2,000 merchants and 50,000 cards. Reported per scenario: events/s, conflicts (retried
transactions) per event, and per-call latency p50/p99/p99.9/max. Memory: ``MEMORY USAGE`` of a few
thousand card and merchant keys after a realistic history, plus the growth of ``used_memory`` per key.
Writes benchmarks/results/redis_state.json.

    .venv/bin/python benchmarks/bench_redis_state.py [--url redis://127.0.0.1:6379/0] [--quick]

Without ``--url`` it starts the project's Redis (``scripts/services/redis start``, port ``$REDIS_PORT``).
The lock-per-key variant is measured for contrast only (see :class:`LockingStore`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import write_results  # noqa: E402

from fraudstream.model.features.state import DAY_MS, CardState, MerchantState  # noqa: E402
from fraudstream.model.schema import Transaction, validate  # noqa: E402
from fraudstream.services.stores.state.redis import RedisStateStore, _decode, _encode  # noqa: E402

T0 = 1_767_225_600_000
TTL_MS = 90 * DAY_MS


class LockingStore(RedisStateStore):
    """The alternative measured for contrast (not shipped): a lock per key (SET NX PX) around read-step-write.

    Three round trips when nobody competes (lock both keys, read, write and unlock); a client that finds
    a key locked releases what it took and tries again (counted as a conflict).
    """

    def _transact(self, txns):  # type: ignore[no-untyped-def]
        card_keys = list(dict.fromkeys(self._card_prefix + t.card_id.encode() for t in txns))
        merchant_keys = list(dict.fromkeys(self._merchant_prefix + t.merchant_id.encode() for t in txns))
        keys = card_keys + merchant_keys
        locks = [k + b":lock" for k in keys]
        token = uuid.uuid4().bytes
        for attempt in range(100_000):
            with self._connection() as conn:
                taken = self._roundtrip(conn, [(b"SET", lock, token, b"NX", b"PX", 5000) for lock in locks])
                if all(r is not None for r in taken):
                    values, newest = self._roundtrip(conn, [(b"MGET", *keys), (b"ZSCORE", self._newest_key, b"newest")])
                    newest = None if newest is None else int(float(newest))
                    cards = {k: None if v is None else CardState.from_list(_decode(v)) for k, v in zip(card_keys, values)}
                    merchants = {k: None if v is None else MerchantState.from_list(_decode(v))
                                 for k, v in zip(merchant_keys, values[len(card_keys):])}
                    rows, newest = self._step_all(txns, cards, merchants, newest)
                    self._roundtrip(conn, [*((b"SET", k, _encode(st.to_list()), *self._px)
                                             for k, st in (*cards.items(), *merchants.items())),
                                           (b"ZADD", self._newest_key, b"GT", newest, b"newest"), (b"DEL", *locks)])
                    with self._stats_lock:
                        self.commits += 1
                    return rows
                mine = [lock for lock, r in zip(locks, taken) if r is not None]
                if mine:
                    self._roundtrip(conn, [(b"DEL", *mine)])
                with self._stats_lock:
                    self.conflicts += 1
            self._backoff(attempt)
        raise self._contended()


def events(seed: int, n: int, cards: int, merchants: int, hot_share: float) -> list[Transaction]:
    """``n`` transactions: ``hot_share`` of them at merchant ``m-hot``, the rest uniform over cards and merchants."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        merchant = "m-hot" if rng.random() < hot_share else f"m-{rng.randrange(merchants)}"
        out.append(validate({
            "transaction_id": f"{seed}-{i}", "timestamp": T0 + i * 50 + seed, "card_id": f"card-{rng.randrange(cards)}",
            "merchant_id": merchant, "amount": round(rng.lognormvariate(3.0, 1.0), 2), "currency": "USD",
            "merchant_category": rng.choice(["grocery", "travel", "electronics", "fuel"]), "channel": "online",
            "country": "US", "merchant_lat": 40.7, "merchant_lon": -74.0,
        }))
    return out


def client(k: int, args: dict[str, Any], barrier: Any, results: Any) -> None:
    """One process: ``threads`` threads scoring this process's events through one store."""
    txns = events(k, args["events"], args["cards"], args["merchants"], args["hot_share"])
    kind = LockingStore if args["mode"] == "lock" else RedisStateStore
    store = kind(TTL_MS, url=args["url"], prefix=args["prefix"], socket_timeout=5)
    n = args["threads"]
    latencies: list[list[float]] = [[] for _ in range(n)]
    start = threading.Barrier(n + 1)

    def work(j: int) -> None:
        mine, clock, features = latencies[j], time.perf_counter, store.features
        start.wait()
        for txn in txns[j::n]:
            t = clock()
            features(txn)
            mine.append(clock() - t)

    threads = [threading.Thread(target=work, args=(j,)) for j in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()  # every process ready: go together
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    results.put({"latencies": [x for xs in latencies for x in xs], "conflicts": store.conflicts,
                 "commits": store.commits, "began": began, "ended": time.perf_counter()})


def contention(url: str, mode: str, processes: int, threads: int, events_per_process: int, hot_share: float,
               cards: int, merchants: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    args = {"url": url, "mode": mode, "prefix": f"bench-{uuid.uuid4().hex[:8]}:", "threads": threads, "events": events_per_process,
            "cards": cards, "merchants": merchants, "hot_share": hot_share}
    procs = [ctx.Process(target=client, args=(k, args, barrier, results)) for k in range(processes)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    # clock_gettime(CLOCK_MONOTONIC) is system-wide on Linux, so the processes' perf_counter readings compare.
    wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    lat = sorted(x for r in reports for x in r["latencies"])
    total = len(lat)
    conflicts = sum(r["conflicts"] for r in reports)

    def q(p: float) -> float:
        return round(lat[min(total - 1, int(p * total))] * 1000, 3)

    RedisStateStore(TTL_MS, url=url, prefix=args["prefix"]).restore({"cards": {}, "merchants": {}})  # clean up
    return {
        "mode": mode, "processes": processes, "threads_per_process": threads, "hot_share": hot_share, "events": total,
        "events_per_s": round(total / wall), "conflicts_per_event": round(conflicts / total, 3),
        "p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": round(lat[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(lat) * 1000, 3),
    }


def memory(url: str, cards: int, merchants: int, events_per_card: int, days: int, remember_ids: bool) -> dict[str, Any]:
    """Bytes per card and per merchant key after ``events_per_card`` events per card over ``days`` days."""
    import redis

    prefix = f"bench-mem-{uuid.uuid4().hex[:8]}:"
    store = RedisStateStore(TTL_MS, url=url, prefix=prefix, socket_timeout=30)
    client_ = redis.Redis.from_url(url)
    before = client_.info("memory")["used_memory"]
    rng = random.Random(1)
    batch: list[Transaction] = []
    span = days * DAY_MS
    for c in range(cards):
        home = [f"m-{rng.randrange(merchants)}" for _ in range(8)]  # a card shops at a handful of merchants
        for e in range(events_per_card):
            txn = validate({
                "transaction_id": uuid.UUID(int=rng.getrandbits(128)).hex, "timestamp": T0 + span * e // events_per_card
                + rng.randrange(span // events_per_card), "card_id": f"{c:016x}{c:016x}", "merchant_id": rng.choice(home),
                "amount": round(rng.lognormvariate(3.0, 1.0), 2), "currency": "USD",
                "merchant_category": rng.choice(["grocery", "travel", "electronics", "fuel", "restaurants"]),
                "channel": rng.choice(["online", "card_present"]), "country": rng.choice(["US", "US", "CA"]),
                "merchant_lat": 40.7, "merchant_lon": -74.0, "card_lat": 40.7, "card_lon": -74.0,
            })
            if remember_ids:
                store.remember_id(txn)
            batch.append(txn)
        if len(batch) >= 2000:
            store.features_many(batch)
            batch = []
    store.features_many(batch)
    after = client_.info("memory")["used_memory"]
    sizes = store.sizes()
    sample_cards = [k for k, _ in zip(client_.scan_iter(match=f"{prefix}c:*", count=1000), range(3000))]
    sample_merchants = [k for k, _ in zip(client_.scan_iter(match=f"{prefix}m:*", count=1000), range(3000))]
    card_bytes = [client_.memory_usage(k, samples=0) for k in sample_cards]
    merchant_bytes = [client_.memory_usage(k, samples=0) for k in sample_merchants]
    value_bytes = [client_.strlen(k) for k in sample_cards]
    store.restore({"cards": {}, "merchants": {}})
    client_.close()
    return {
        "cards": sizes.cards, "merchants": sizes.merchants, "events_per_card": events_per_card, "days": days,
        "ids_remembered": remember_ids,
        "card_memory_usage_bytes_median": statistics.median(card_bytes),
        "card_memory_usage_bytes_mean": round(statistics.fmean(card_bytes)),
        "card_value_bytes_median": statistics.median(value_bytes),
        "merchant_memory_usage_bytes_median": statistics.median(merchant_bytes),
        "used_memory_growth_per_key_bytes": round((after - before) / (sizes.cards + sizes.merchants)),
        "sampled_keys": len(card_bytes) + len(merchant_bytes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the Redis to use (default: start scripts/services/redis, on $REDIS_PORT)")
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    args = parser.parse_args()
    if args.url is None:
        script = Path(__file__).resolve().parents[1] / "scripts" / "services" / "redis"
        args.url = subprocess.run([str(script), "start"], check=True, capture_output=True, text=True).stdout.split()[-1]
    n = 1000 if args.quick else 6000
    scenarios = [  # (processes, threads, hot share), each with WATCH/MULTI (shipped) and with a lock per key
        (1, 1, 0.0), (1, 1, 0.3), (2, 4, 0.0), (2, 4, 0.3), (2, 4, 0.6), (4, 4, 0.3), (4, 8, 0.3),
    ]
    runs = []
    for (processes, threads, hot), mode in ((s, m) for s in scenarios for m in ("watch", "lock")):
        result = contention(args.url, mode, processes, threads, n if processes == 1 else n // processes * 2, hot,
                            cards=50_000, merchants=2_000)
        runs.append(result)
        print(result, flush=True)
    mem_cards = 600 if args.quick else 3000
    memories = [memory(args.url, mem_cards, 1000, 30, 30, remember_ids=True),
                memory(args.url, mem_cards, 1000, 30, 30, remember_ids=False),
                memory(args.url, mem_cards // 3, 1000, 80, 1, remember_ids=True)]  # busy cards: a full id memory
    for m in memories:
        print(m, flush=True)
    path = write_results("redis_state", {"command": " ".join(sys.argv), "contention": runs, "memory": memories})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
