"""The Redis state store against a real Redis: concurrent clients lose no update, duplicate ids are
remembered atomically, Redis' key expiry follows the TTL, and an outage raises one clear error and heals.

The contract suite (tests/contract/test_state_store_contract.py) already holds the store to the pure
step event by event; these tests are about what only a shared store has: several processes at once,
and a server that goes away.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis_support import assert_same_state, hot_rows, run_script
from support import HOUR, T0, make_txn, pid_alive, wait_for

from fraudstream.model.errors import ServiceError
from fraudstream.model.features.ids import NEW, RETRY
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.state import DAY_MS
from fraudstream.model.schema import validate
from fraudstream.services.stores.state import StateStoreUnavailable
from fraudstream.services.stores.state.redis import EXPIRY_MARGIN_MS, RedisStateStore

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("redis_state_worker.py")
PROCESSES, THREADS = 3, 4


def store_at(url: str, ttl_ms: int | None = None, **options: Any) -> RedisStateStore:
    """A store under a fresh prefix (tests never see each other's keys); generous timeout on a loaded machine."""
    options.setdefault("socket_timeout", 30)
    return RedisStateStore(ttl_ms, url=url, prefix=f"test-{uuid.uuid4().hex[:12]}:", **options)


def test_many_processes_and_threads_on_one_card_and_one_merchant_lose_no_update(redis_url: str, tmp_path: Path) -> None:
    rows = hot_rows()
    events = tmp_path / "events.json"
    events.write_text(json.dumps(rows))
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), redis_url, prefix, str(events), str(k), str(PROCESSES), str(THREADS)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(PROCESSES)
    ]
    try:
        for w in workers:  # every process is connected and its threads wait: then all start at once
            assert w.stdout is not None and w.stdout.readline().strip() == "ready", w.communicate(timeout=60)
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = []
        for w in workers:
            out, err = w.communicate(timeout=600)
            assert w.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()

    assert sum(r["events"] for r in reports) == len(rows)
    assert sum(r["commits"] for r in reports) == len(rows)  # one transaction per event, each committed once
    assert sum(r["conflicts"] for r in reports) > 0, "no two clients ever collided: the test proved nothing"

    sequential = FeatureState()
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        sequential.features(validate(row))
    shared = RedisStateStore(None, url=redis_url, prefix=prefix, socket_timeout=30)
    assert_same_state(shared.snapshot(), sequential)
    assert sequential.cards["card-hot"].seen > 1000 and shared.newest_ms == max(r["timestamp"] for r in rows)


def test_a_duplicate_id_sent_by_many_clients_at_once_is_new_exactly_once(redis_url: str) -> None:
    store = store_at(redis_url)
    ids, copies, threads = 48, 2, 8
    txns = [make_txn(i % ids, T0 + (i % ids) * 1000, card_id="card-hot") for i in range(ids * copies)]
    random.Random(5).shuffle(txns)
    answers: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        start.wait()
        mine = [store.remember_id(txn) for txn in txns[k::threads]]
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(answers) == [NEW] * ids + [RETRY] * ids * (copies - 1)
    assert len(store.snapshot()["cards"]["card-hot"][19]) == ids


def test_redis_key_expiry_follows_the_ttl_and_without_one_nothing_expires(redis_url: str) -> None:
    import redis

    ttl = 30 * DAY_MS
    with_ttl, without = store_at(redis_url, ttl), store_at(redis_url)
    txn = make_txn(0, T0)
    with_ttl.features(txn)
    without.features(txn)
    client = redis.Redis.from_url(redis_url)
    try:
        for key in (b"c:card-1", b"m:m-1"):
            left = client.pttl(with_ttl.prefix.encode() + key)
            assert ttl < left <= ttl + EXPIRY_MARGIN_MS  # the event-time TTL plus the margin, counted from the write
            assert client.pttl(without.prefix.encode() + key) == -1
    finally:
        client.close()
    with pytest.raises(ValueError, match="expire_after_ms"):
        store_at(redis_url, ttl, expire_after_ms=ttl - 1)  # Redis would drop keys that are still active


def test_a_server_that_never_answers_fails_within_the_socket_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        store = RedisStateStore(None, url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StateStoreUnavailable, match="unavailable") as raised:
            store.features(make_txn())
        assert time.monotonic() - started < 10  # 0.3 s each for connect-side reads; no retry loop behind it
        assert isinstance(raised.value, ServiceError) and isinstance(raised.value, ConnectionError)


# ---------------------------------------------------------------- an outage of a private Redis


def test_redis_killed_mid_run_raises_the_clear_error_and_the_same_store_recovers(private_redis) -> None:
    url, port, var = private_redis
    store = RedisStateStore(None, url=url, prefix="outage:", socket_timeout=2)
    outcomes: list[str] = []
    failures_s: list[float] = []
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def score() -> None:
        i = 0
        while not stop.is_set():
            txn = make_txn(i, T0 + i * 1000, card_id=f"card-{i % 10}", merchant_id="m-1")
            started = time.monotonic()
            try:
                store.features(txn)
                outcomes.append("ok")
            except StateStoreUnavailable:
                outcomes.append("down")
                failures_s.append(time.monotonic() - started)
            except BaseException as error:  # any other type is the bug under test
                unexpected.append(error)
                return
            i += 1
            stop.wait(0.002)  # pacing, not synchronisation: leave the machine's cores to Redis and the script

    scorer = threading.Thread(target=score)
    scorer.start()
    try:
        wait_for(lambda: outcomes.count("ok") >= 50 or unexpected, "scoring against the running Redis")
        pid = int((var / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), "redis-server to die")
        wait_for(lambda: "down" in outcomes or unexpected, "the store to notice the outage")
        with pytest.raises(StateStoreUnavailable, match=f"127.0.0.1:{port}"):
            store.features(make_txn(10**6, T0))
        run_script("start", port, var)
        first_down = outcomes.index("down")
        wait_for(lambda: "ok" in outcomes[first_down:] or unexpected, "the same store to work again after the restart")
        wait_for(lambda: outcomes[first_down:].count("ok") >= 50 or unexpected, "steady scoring after the restart")
    finally:
        stop.set()
        scorer.join()
    assert not unexpected, f"an error other than StateStoreUnavailable escaped: {unexpected[0]!r}"
    assert max(failures_s) < 10, "a call against a dead Redis should fail fast, not retry"
    # The restarted Redis started empty (no persistence): it holds exactly the events scored since it answers.
    last_down = len(outcomes) - 1 - outcomes[::-1].index("down")
    snapshot = store.snapshot()
    assert sum(card[1] for card in snapshot["cards"].values()) == len(outcomes) - 1 - last_down
    assert store.newest_ms is not None


def test_expire_drops_only_what_the_event_time_rule_calls_idle_and_leaves_concurrent_writers_alone(redis_url: str) -> None:
    ttl = 2 * DAY_MS
    store = store_at(redis_url, ttl)
    for i in range(40):
        store.features(make_txn(i, T0 + i * HOUR // 10, card_id=f"old-{i}", merchant_id=f"m-old-{i % 4}"))
    store.features(make_txn(100, T0 + 3 * DAY_MS, card_id="new", merchant_id="m-new"))
    assert store.expire() == 40 + 4
    assert store.sizes() == (1, 1) and store.expire() == 0


def test_a_runner_checkpoint_of_the_memory_store_seeds_redis_and_back(redis_url: str) -> None:
    """Both stores speak the same snapshot, so an API can start from a runner's state and hand it back."""
    import msgspec

    txns = [make_txn(i, T0 + i * 600_000, card_id=f"card-{i % 7}", merchant_id=f"m-{i % 3}", amount=1.0 + i)
            for i in range(200)]
    memory, redis_store = FeatureState(30 * DAY_MS), store_at(redis_url, 30 * DAY_MS)
    memory.features_many(txns[:120])
    for txn in txns[:120:10]:
        memory.remember_id(txn)
    redis_store.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(memory.snapshot())))
    assert redis_store.snapshot() == msgspec.msgpack.decode(msgspec.msgpack.encode(memory.snapshot()))
    assert redis_store.newest_ms == memory.newest_ms
    assert redis_store.features_many(txns[120:]) == memory.features_many(txns[120:])
    back = FeatureState.from_snapshot(redis_store.snapshot(), 30 * DAY_MS)
    assert back.snapshot() == msgspec.msgpack.decode(msgspec.msgpack.encode(memory.snapshot()))
