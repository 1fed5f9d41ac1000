"""Warm-up: fold history into the feature state before going live, so that a fresh deployment does not open
with an alert storm (every card looks unusual while it has no history). Nothing is scored, nothing alerted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction


@dataclass
class WarmState:
    """The state after the history, how many transactions went in, and the newest row position read."""

    state: StateStore
    transactions: int
    last_position: int


def warm_up(rows: Iterable[tuple[int, Transaction]], state: StateStore | None = None) -> WarmState:
    """Step the features over ``(position, txn)`` rows (give them in event order), discarding the feature values.

    >>> from fraudstream.model.schema import validate
    >>> txn = validate({"transaction_id": "t1", "timestamp": "2026-01-01T10:00:00Z", "card_id": "c1",
    ...                 "merchant_id": "m1", "amount": 12.5})
    >>> warm = warm_up([(1, txn)])
    >>> warm.transactions, warm.last_position, list(warm.state.cards)
    (1, 1, ['c1'])
    """
    state = state if state is not None else FeatureState()
    count = last = 0
    step = state.features
    for position, txn in rows:
        step(txn)
        count += 1
        last = max(last, position)
    return WarmState(state, count, last)
