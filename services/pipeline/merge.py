"""One order out of several ordered inputs: the merge that puts a merchant's events back in order.

The Kafka runner's card stage reads P card partitions and forwards each transaction to the merchant
stage, keyed by merchant. A merchant partition therefore receives the events of P sources interleaved
in whatever order the card stage happened to produce them. :class:`OrderedMerge` holds them back and
releases them in one global order, by an *order key* every event carries, using watermarks: each
source says how far it has got (its events come in increasing key order, so after key ``k`` it will
send nothing below ``k``), and an event is released once every source has got at least as far.
Sources that have nothing to send for a while are declared *idle* and no longer hold the others back.

The released order is a function of the keys alone, whatever the interleaving, as long as each
source's keys increase. An event whose key is already behind what was released (a source whose own
input was out of order, or a source that was idle and woke up with old events) is *late*: it is
released at once, where it arrived, and counted.

>>> merge = OrderedMerge(sources=2)
>>> merge.add(0, (5,), "a"), merge.add(0, (7,), "b"), merge.add(1, (6,), "c")
([], [], ['a', 'c'])
>>> merge.idle(1), merge.pending
(['b'], 0)
>>> merge.add(1, (3,), "late"), merge.late
(['late'], 1)
"""

from __future__ import annotations

import heapq
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
OrderKey = tuple[int, ...]


class OrderedMerge(Generic[Item]):
    """Releases items of ``sources`` inputs in order-key order once every non-idle input has passed them."""

    def __init__(self, sources: int) -> None:
        if sources < 1:
            raise ValueError(f"a merge needs at least one source, got {sources}")
        self.sources = sources
        self.marks: list[OrderKey | None] = [None] * sources  # how far each source has got
        self.idles: list[bool] = [False] * sources
        self.released: OrderKey | None = None  # the key of the newest item released
        self.late = 0
        self._heap: list[tuple[OrderKey, int, Item]] = []
        self._count = 0  # heap tie-breaker: items are never compared

    @property
    def pending(self) -> int:
        """Items held back, waiting for a slower source."""
        return len(self._heap)

    def add(self, source: int, key: OrderKey, item: Item) -> list[Item]:
        """Take ``item`` of ``source``; returns what can be released now, in order (``item`` at once if late)."""
        self._pass(source, key)
        if self.released is not None and key <= self.released:
            self.late += 1
            return [item] + self._release()
        self._count += 1
        heapq.heappush(self._heap, (key, self._count, item))
        return self._release()

    def watermark(self, source: int, key: OrderKey) -> list[Item]:
        """``source`` has got to ``key`` (it will send nothing before it); returns what that releases."""
        self._pass(source, key)
        return self._release()

    def idle(self, source: int) -> list[Item]:
        """``source`` has nothing to send for now: it holds nobody back until it sends again."""
        self.idles[source] = True
        return self._release()

    def _pass(self, source: int, key: OrderKey) -> None:
        mark = self.marks[source]
        if mark is None or key > mark:
            self.marks[source] = key
        self.idles[source] = False

    def _release(self) -> list[Item]:
        heap = self._heap
        if not heap:
            return []
        active = [mark for mark, idle in zip(self.marks, self.idles) if not idle]
        if any(mark is None for mark in active):
            return []  # a source that has said nothing yet may still send anything
        limit = min(active) if active else None  # type: ignore[type-var]
        out: list[Item] = []
        while heap and (limit is None or heap[0][0] <= limit):
            key, _, item = heapq.heappop(heap)
            self.released = key
            out.append(item)
        return out

    def snapshot(self, encode: Any = None) -> dict[str, Any]:
        """Plain lists (items passed through ``encode``), for :meth:`restore`."""
        encode = encode or (lambda item: item)
        return {
            "sources": self.sources,
            "marks": [list(m) if m is not None else None for m in self.marks],
            "idles": list(self.idles),
            "released": list(self.released) if self.released is not None else None,
            "late": self.late,
            "pending": [[list(key), encode(item)] for key, _, item in sorted(self._heap, key=lambda e: (e[0], e[1]))],
        }

    def restore(self, snapshot: dict[str, Any], decode: Any = None) -> None:
        """Replace the content with ``snapshot``'s (items passed through ``decode``)."""
        decode = decode or (lambda item: item)
        self.sources = snapshot["sources"]
        self.marks = [tuple(m) if m is not None else None for m in snapshot["marks"]]
        self.idles = list(snapshot["idles"])
        self.released = tuple(snapshot["released"]) if snapshot["released"] is not None else None
        self.late = snapshot["late"]
        self._heap = []
        for self._count, (key, item) in enumerate(snapshot["pending"], start=1):
            self._heap.append((tuple(key), self._count, decode(item)))
        self._count = len(self._heap)
        heapq.heapify(self._heap)
