"""The first answer given for each transaction_id, kept so a retried request gets it again.

Bounded (least recently used out first). The intake's duplicate-id memory decides *whether* a request
is a retry (it compares the content, and travels with the card's state); this cache only remembers
*what* was answered. A retry whose answer was evicted, or was given by another process, falls back to
the alert store (see :class:`~fraudstream.services.api.scoring.ScoringService`).

>>> cache = AnswerCache(2)
>>> cache.put("a", {"score": 0.1}); cache.put("b", {}); cache.put("c", {})
>>> cache.get("a") is None, cache.get("c")
(True, {})
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class AnswerCache:
    """``transaction_id -> answer``, at most ``size`` entries (0: remember nothing)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        with self._lock:
            answer = self._answers.get(transaction_id)
            if answer is not None:
                self._answers.move_to_end(transaction_id)
            return answer

    def put(self, transaction_id: str, answer: dict[str, Any]) -> None:
        """Keep the FIRST answer for an id (a later put for the same id changes nothing)."""
        if self.size <= 0:
            return
        with self._lock:
            if transaction_id in self._answers:
                return
            self._answers[transaction_id] = answer
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
