"""The state-store contract: every feature-state store computes what the pure step computes.

Parametrised over ``IMPLEMENTATIONS``: every backend of ``services/stores/state/registry.py``
(a registered backend without a case here fails) plus the wrappers runtimes use. Adding a
backend: its module, its line in ``STATE_STORES``, and its case in ``CASES`` below (how to open an
empty one with a given TTL; a backend that needs a real service is marked ``integration``).
"""

from __future__ import annotations

import functools
import random
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from support import HOUR, T0, make_txn, service

from fraudstream.model.features.ids import CONFLICT, NEW, RETRY
from fraudstream.model.features.state import DAY_MS, CardState, MerchantState
from fraudstream.model.features.step import FEATURE_NAMES, step
from fraudstream.model.features.store import StateSizes, StateStore
from fraudstream.model.schema import Transaction
from fraudstream.services.stores.state.locked import LockedStateStore
from fraudstream.services.stores.state.registry import STATE_STORES, open_state_store

Factory = Callable[[int | None], StateStore]  # ttl_ms -> an empty store


@functools.cache
def redis_url() -> str:
    """The project's Redis (scripts/services/redis, on $REDIS_PORT), started once and left running for reuse."""
    return service("redis", "start")


def open_redis(ttl: int | None) -> StateStore:
    """An empty Redis store: a fresh key prefix in the shared test Redis."""
    return open_state_store("redis", ttl_ms=ttl, url=redis_url(), prefix=f"contract-{uuid.uuid4().hex[:12]}:",
                            socket_timeout=30)


# One case per registered backend: how to open an empty store with a TTL, and its pytest marks.
CASES: dict[str, tuple[Factory, list[Any]]] = {
    "memory": (lambda ttl: open_state_store("memory", ttl_ms=ttl), []),
    "redis": (open_redis, [pytest.mark.integration]),
}
# What runtimes wrap stores in: held to the same contract.
WRAPPERS: dict[str, tuple[Factory, list[Any]]] = {
    "memory+lock": (lambda ttl: LockedStateStore(open_state_store("memory", ttl_ms=ttl)), []),
}
IMPLEMENTATIONS = {**CASES, **WRAPPERS}

HISTORY = FEATURE_NAMES.index("card_history_log")


def test_every_registered_store_has_a_case() -> None:
    missing = set(STATE_STORES) - set(CASES)
    assert not missing, f"state stores registered without a contract case in CASES ({__file__}): {sorted(missing)}"


@pytest.fixture(params=[pytest.param(name, marks=marks) for name, (_, marks) in sorted(IMPLEMENTATIONS.items())])
def make_store(request: pytest.FixtureRequest) -> Factory:
    return IMPLEMENTATIONS[request.param][0]


def stream(n: int = 800, seed: int = 7, gaps: tuple[int, ...] = (5_000, 60_000, 900_000, HOUR, 20 * HOUR)) -> list[Transaction]:
    """Cards sharing merchants, some late events, locations and zero amounts: every branch of the step."""
    rng = random.Random(seed)
    txns, t = [], T0
    for i in range(n):
        t += rng.choice(gaps)
        late = rng.random() < 0.05
        txns.append(make_txn(
            i, t - 3 * HOUR if late else t,
            card_id=f"card-{rng.randrange(15)}",
            merchant_id=f"m-{rng.randrange(6)}",
            amount=rng.choice([0.0, 1.5, round(rng.lognormvariate(3.0, 1.0), 2), 2500.0]),
            merchant_category=rng.choice(["grocery", "travel", "electronics", None]),
            channel=rng.choice(["card_present", "online", "atm"]),
            country=rng.choice(["US", "US", "GB", None]),
            merchant_lat=rng.choice([40.71, 34.05, None]), merchant_lon=-74.0,
        ))
    return txns


def pure(txns: list[Transaction]) -> list[tuple[float, ...]]:
    """The reference: the pure step over plain dicts of state, no TTL."""
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    return [step(cards.setdefault(t.card_id, CardState()), merchants.setdefault(t.merchant_id, MerchantState()), t)
            for t in txns]


def test_features_equal_the_pure_step(make_store: Factory) -> None:
    txns = stream()
    expected = pure(txns)
    one_by_one = make_store(None)
    assert isinstance(one_by_one, StateStore)
    assert [one_by_one.features(t) for t in txns] == expected
    batched = make_store(None)
    assert batched.features_many(txns[:300]) + batched.features_many(txns[300:]) == expected
    assert batched.features_many([]) == []
    assert batched.newest_ms == max(t.timestamp_ms for t in txns)
    assert batched.sizes() == StateSizes(len({t.card_id for t in txns}), len({t.merchant_id for t in txns}))
    assert len(batched) == sum(batched.sizes())


@pytest.mark.parametrize("ttl", [None, 2 * DAY_MS])
def test_a_snapshot_restored_elsewhere_continues_with_identical_features(make_store: Factory, ttl: int | None) -> None:
    txns = stream(gaps=(60_000, HOUR, 30 * HOUR))
    straight = make_store(ttl)
    expected = straight.features_many(txns)
    first = make_store(ttl)
    got = first.features_many(txns[:400])
    wire = msgspec.msgpack.encode(first.snapshot())  # how the runners persist it
    resumed = make_store(ttl)
    resumed.features(make_txn(99_999, T0, card_id="stale-card", merchant_id="stale-m"))  # restore replaces it
    resumed.restore(msgspec.msgpack.decode(wire))
    assert resumed.newest_ms == first.newest_ms and resumed.sizes() == first.sizes()
    got += resumed.features_many(txns[400:])
    assert got == expected
    assert resumed.snapshot() == straight.snapshot()


def test_the_id_memory_survives_a_snapshot(make_store: Factory) -> None:
    store = make_store(None)
    for i in range(5):
        txn = make_txn(i, T0 + i * HOUR, card_id=f"c{i % 2}")
        assert store.remember_id(txn) == NEW
        store.features(txn)
    restored = make_store(None)
    restored.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(store.snapshot())))
    assert restored.remember_id(make_txn(3, T0 + 3 * HOUR, card_id="c1")) == RETRY
    assert restored.remember_id(make_txn(3, T0 + 3 * HOUR, card_id="c1", amount=1.0)) == CONFLICT
    assert restored.remember_id(make_txn(3, T0 + 3 * HOUR, card_id="c0")) == NEW  # ids are per card


def test_ttl_drops_only_idle_keys_and_a_dropped_key_starts_fresh(make_store: Factory) -> None:
    ttl = 2 * DAY_MS
    store = make_store(ttl)
    store.features(make_txn(0, T0, card_id="idle", merchant_id="m-idle"))
    store.features(make_txn(1, T0 + DAY_MS, card_id="edge", merchant_id="m-busy"))
    store.features(make_txn(2, T0 + 3 * DAY_MS, card_id="busy", merchant_id="m-busy"))
    assert store.sizes() == StateSizes(3, 2)
    # "edge" is exactly ttl old: not idle. "idle" and "m-idle" are 3 days old.
    assert store.expire() == 2
    assert store.sizes() == StateSizes(2, 1)
    assert store.expire() == 0
    kept = store.features(make_txn(3, T0 + 3 * DAY_MS, card_id="edge", merchant_id="m-busy"))
    assert kept[HISTORY] > 0  # "edge" kept its history
    back = make_txn(4, T0 + 3 * DAY_MS + HOUR, card_id="idle", merchant_id="m-idle")
    assert store.features(back) == make_store(None).features(back)  # as if never seen


def test_when_expiry_runs_never_changes_a_feature(make_store: Factory) -> None:
    """An idle key starts fresh at its next event whether or not a sweep dropped it in between."""
    txns = stream(n=600, seed=3, gaps=(HOUR, 20 * HOUR, 3 * DAY_MS, 9 * DAY_MS))
    ttl = 5 * DAY_MS
    swept, never = make_store(ttl), make_store(ttl)
    got = []
    for txn in txns:
        got.append(swept.features(txn))
        swept.expire()
    assert got == never.features_many(txns)
    assert len(swept) < len(never) or never.expire() == 0
    assert got != pure(txns)  # the gaps do exceed the TTL: the TTL changed something
    without = make_store(None)
    assert without.features_many(txns) == pure(txns) and without.expire() == 0


def test_a_ttl_shorter_than_the_duplicate_window_is_refused(make_store: Factory) -> None:
    with pytest.raises(ValueError):
        make_store(HOUR)


def test_one_card_updated_from_many_threads_is_one_unit_per_event(make_store: Factory) -> None:
    store = make_store(None)
    if not store.thread_safe:
        pytest.skip("this store is not thread-safe (one owner thread per store)")
    threads, per_thread = 8, 150
    # Identical events but for their ids: any serial order gives the same feature rows, so the rows
    # seen under concurrency must be exactly the serial ones, each once (card and merchant together).
    txns = [make_txn(i, T0, card_id="shared", merchant_id="m-shared") for i in range(threads * per_thread)]
    expected = sorted(pure(txns))
    results: list[list[tuple[float, ...]]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        start.wait()
        for txn in txns[k::threads]:
            results[k].append(store.features(txn))

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(old)
    assert sorted(row for rows in results for row in rows) == expected
