"""A lock around any state store, for runtimes that call one store from several threads (an API server).

Each call holds the lock, so every event's read-step-write of its card and merchant is one unit
and snapshots see no half-applied event. Stores that are atomic by themselves (a Redis store
running the step in one transaction) need no wrapper.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudstream.model.features.store import StateSizes, StateStore
    from fraudstream.model.schema import Transaction


class LockedStateStore:
    """``store``, with every call serialised by one lock (thread-safe)."""

    thread_safe = True

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._lock = threading.Lock()

    @property
    def ttl_ms(self) -> int | None:
        return self.store.ttl_ms

    def features(self, txn: Transaction) -> tuple[float, ...]:
        with self._lock:
            return self.store.features(txn)

    def features_many(self, txns: Sequence[Transaction]) -> list[tuple[float, ...]]:
        with self._lock:
            return self.store.features_many(txns)

    def remember_id(self, txn: Transaction) -> int:
        with self._lock:
            return self.store.remember_id(txn)

    @property
    def newest_ms(self) -> int | None:
        with self._lock:
            return self.store.newest_ms

    def expire(self) -> int:
        with self._lock:
            return self.store.expire()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.store.snapshot()

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self.store.restore(snapshot)

    def sizes(self) -> StateSizes:
        with self._lock:
            return self.store.sizes()

    def __len__(self) -> int:
        with self._lock:
            return len(self.store)
