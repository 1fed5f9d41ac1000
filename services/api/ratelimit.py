"""Requests per second per API key (a token bucket per key digest), so one caller cannot starve the others.

Per process: with several workers or replicas each enforces the rate on its own share of the traffic.

>>> clock = iter([0.0, 0.0, 0.0, 1.0]).__next__
>>> limit = RateLimit(1.0, clock=clock)
>>> [limit.allow(b"k") for _ in range(4)]
[True, False, False, True]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 10_000  # buckets kept (least recently used out first): an unknown key never gets this far


class RateLimit:
    """At most ``per_second`` requests a second per key, with bursts of up to ``max(1, per_second)``."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_second
        self.burst = max(1.0, per_second)
        self._clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, key: bytes) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty (answer 429)."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
            return allowed
