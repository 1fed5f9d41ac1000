"""Many requests at once for one card and one merchant lose no update: the service serialises the in-memory
store (not thread-safe) with its lock, and a thread-safe store keeps each event one unit by itself."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fraudstream.model.bundle import ModelBundle
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore
from fraudstream.services.api.metrics import ApiMetrics
from fraudstream.services.api.scoring import ScoringService
from fraudstream.services.stores.alerts.memory import MemoryAlertStore
from fraudstream.services.stores.state.locked import LockedStateStore

THREADS, EACH = 8, 150
T0 = 1_769_904_000_000  # 2026-02-01T00:00:00Z


@pytest.fixture
def tiny_switches() -> Iterator[None]:
    """Switch threads as often as possible, so an unprotected read-step-write would be interleaved."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def burst(service: ScoringService) -> list[Any]:
    outcomes: list[Any] = []
    barrier = threading.Barrier(THREADS)

    def client(k: int) -> None:
        barrier.wait()
        for i in range(EACH):
            n = i * THREADS + k
            row = {"transaction_id": f"t{n}", "timestamp": T0 + n * 1000, "card_id": "one-card",
                   "merchant_id": "busy-merchant", "amount": 10 + n % 7}
            outcomes.append(service.score_one(row))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.parametrize("make_state", [FeatureState, lambda: LockedStateStore(FeatureState())],
                         ids=["memory, the service's lock", "a thread-safe store, no service lock"])
def test_parallel_requests_for_one_card_and_merchant_lose_no_update(
    bundle: ModelBundle, tiny_switches: None, make_state: Any
) -> None:
    state: StateStore = make_state()
    service = ScoringService(bundle, state, MemoryAlertStore(), ApiMetrics())
    assert service.thread_safe is getattr(state, "thread_safe", False)
    outcomes = burst(service)
    assert [o.status for o in outcomes] == [200] * THREADS * EACH
    snapshot = state.snapshot()
    assert snapshot["cards"]["one-card"][1] == THREADS * EACH  # transactions the card's state has seen
    assert state.sizes() == (1, 1)
