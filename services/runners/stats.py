"""A run's live statistics, shared by every runner: counters, position, latencies, recent alerts."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from fraudstream.services.stores.alerts.base import Alert

# duplicates: retries of a transaction already admitted (same id, same content), skipped, not scored again
# The Kafka runner adds "late": transactions its merchant stage merged after later ones (runners/kafka_stages.py).
COUNTERS = ("read", "scored", "alerts", "dead_letters", "duplicates")


@dataclass
class RunStats:
    """Live counters of a run, for the live view, metrics and the final summary."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    position: int = 0
    resumed_from: int = 0
    started: float = field(default_factory=time.perf_counter)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    recent_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=10))
    dead_letter_fields: Counter[str] = field(default_factory=Counter)
    finished: bool = False
    lag: int | None = None  # messages behind the source's end, where the source can tell

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def rate(self) -> float:
        """Rows read per second in this process (resumed rows excluded)."""
        elapsed = self.elapsed_s
        return (self.position - self.resumed_from) / elapsed if elapsed > 0 else 0.0

    def latency_ms(self, quantile: float) -> float | None:
        """Arrival-to-decision latency quantile in milliseconds (decision = alert store committed)."""
        if not self.latencies_s:
            return None
        return float(np.quantile(np.fromiter(self.latencies_s, float), quantile) * 1000)
