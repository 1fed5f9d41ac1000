"""Duplicate transaction ids: a card remembers its recent ids, bounded, and the memory travels with its state."""

from __future__ import annotations

from support import HOUR, T0, make_txn

from fraudstream.model.features import FeatureState
from fraudstream.model.features.ids import CONFLICT, ID_WINDOW_MS, MAX_IDS_PER_CARD, NEW, RETRY, fingerprint
from fraudstream.model.features.state import CardState


def test_a_retry_is_recognised_and_a_reused_id_is_a_conflict() -> None:
    state = FeatureState()
    txn = make_txn(1, T0, amount=12.5)
    assert state.remember_id(txn) == NEW
    assert state.remember_id(make_txn(1, T0, amount=12.5)) == RETRY
    assert state.remember_id(make_txn(1, T0, amount=99.0)) == CONFLICT
    assert state.remember_id(make_txn(1, T0 + 1, amount=12.5)) == CONFLICT  # another time: another transaction
    assert state.remember_id(make_txn(1, T0, amount=12.5)) == RETRY  # the first one is still the one remembered
    assert state.remember_id(make_txn(1, T0, amount=12.5, card_id="other-card")) == NEW  # ids are per card


def test_labels_and_extra_fields_do_not_make_a_retry_a_new_transaction() -> None:
    txn = make_txn(1, T0)
    assert fingerprint(make_txn(1, T0, is_fraud=1, delivery="second attempt")) == fingerprint(txn)
    assert fingerprint(make_txn(1, T0, merchant_id="elsewhere")) != fingerprint(txn)
    assert len(fingerprint(txn)) == 8


def test_the_memory_is_bounded_in_event_time_and_in_size() -> None:
    state = FeatureState()
    state.remember_id(make_txn(0, T0))
    state.remember_id(make_txn(1, T0 + ID_WINDOW_MS + HOUR))  # a day later: t0 is forgotten
    assert list(state.cards["card-1"].ids) == ["t1"]
    assert state.remember_id(make_txn(0, T0)) == NEW  # so a retry that late is a new transaction again
    for i in range(10, 10 + 3 * MAX_IDS_PER_CARD):
        state.remember_id(make_txn(i, T0 + ID_WINDOW_MS + 2 * HOUR))
    assert len(state.cards["card-1"].ids) == MAX_IDS_PER_CARD


def test_the_memory_is_snapshotted_and_old_snapshots_restore_without_it() -> None:
    state = FeatureState()
    for i in range(5):
        state.step(make_txn(i, T0 + i * HOUR))
        state.remember_id(make_txn(i, T0 + i * HOUR))
    restored = FeatureState.from_snapshot(state.snapshot())
    assert restored.remember_id(make_txn(3, T0 + 3 * HOUR)) == RETRY
    assert restored.remember_id(make_txn(3, T0)) == CONFLICT
    old = state.cards["card-1"].to_list()[:19]  # a snapshot written before ids were remembered
    card = CardState.from_list(old)
    assert card.ids == {} and card.seen == 5


def test_an_id_older_than_the_window_is_forgotten_even_before_a_newer_event_pruned_it() -> None:
    # The answer must not depend on whether the memory was pruned (or the card swept by a state TTL) in between.
    state = FeatureState()
    state.remember_id(make_txn(0, T0))
    assert state.remember_id(make_txn(0, T0 + ID_WINDOW_MS + HOUR, amount=99.0)) == NEW  # not a conflict: t0 is gone
    assert state.remember_id(make_txn(0, T0 + ID_WINDOW_MS + HOUR, amount=99.0)) == RETRY
