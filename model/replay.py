"""Event-time order for training: history is learnt as it happened. Scoring keeps the input's own order
(the order a stream delivers it), so batch and real-time runs give the same answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction


def in_event_order(rows: Iterable[tuple[int, Transaction]]) -> list[tuple[int, Transaction]]:
    """Sort ``(position, txn)`` pairs by event time; equal times keep their input order (stable)."""
    return sorted(rows, key=lambda row: (row[1].timestamp_ms, row[0]))
