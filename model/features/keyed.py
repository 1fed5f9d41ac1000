"""All cards' and merchants' feature state in one process's memory: the first, reference :class:`StateStore`.

What a runner owns, checkpoints and restores, and what training and ``score`` use. With a TTL it
forgets idle cards and merchants (see :mod:`fraudstream.model.features.store` for the rule), so
its memory is bounded by the keys active within the TTL.

>>> from fraudstream.model.schema import validate
>>> day = 86_400_000
>>> store = FeatureState(ttl_ms=30 * day)
>>> row = {"transaction_id": "t1", "timestamp": 1767225600000, "card_id": "c1", "merchant_id": "m1", "amount": 5}
>>> first = store.features(validate(row))
>>> later = store.features(validate({**row, "transaction_id": "t2", "card_id": "c2", "timestamp": 1767225600000 + 40 * day}))
>>> store.sizes(), store.expire(), store.sizes()
(StateSizes(cards=2, merchants=1), 1, StateSizes(cards=1, merchants=1))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fraudstream.model.features.ids import remember_id
from fraudstream.model.features.state import CardState, MerchantState
from fraudstream.model.features.step import CardHandover, card_step, merchant_step, step
from fraudstream.model.features.store import StateSizes, check_ttl

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

SWEEP_EVERY_MIN = 10_000  # a sweep runs after max(this, keys held) updates: about one key check per update


class FeatureState:
    """Maps card and merchant ids to their state and runs :func:`step` against them (not thread-safe).

    ``ttl_ms``: idle keys expire after this much event time (None, the default: never — the pure
    definition training uses).
    """

    __slots__ = ("cards", "merchants", "ttl_ms", "_newest", "_until_sweep")

    thread_safe = False

    def __init__(self, ttl_ms: int | None = None) -> None:
        self.cards: dict[str, CardState] = {}
        self.merchants: dict[str, MerchantState] = {}
        self.ttl_ms = check_ttl(ttl_ms)
        self._newest: int | None = None
        self._until_sweep = SWEEP_EVERY_MIN

    def features(self, txn: Transaction) -> tuple[float, ...]:
        """Features of ``txn``; its card's and merchant's state move past it."""
        newest = self._advance(txn.timestamp_ms)
        return step(self._card(txn.card_id, newest), self._merchant(txn.merchant_id, newest), txn)

    def card_features(self, txn: Transaction) -> tuple[tuple[float, ...], CardHandover]:
        """The card half alone (:func:`~fraudstream.model.features.step.card_step`): for a runtime whose
        merchant state lives elsewhere (the Kafka runner's merchant stage). Only the card moves."""
        return card_step(self._card(txn.card_id, self._advance(txn.timestamp_ms)), txn)

    def merchant_features(self, txn: Transaction, handover: CardHandover) -> tuple[float, ...]:
        """The merchant half alone (:func:`~fraudstream.model.features.step.merchant_step`), given the card
        half's hand-over. Only the merchant moves."""
        return merchant_step(self._merchant(txn.merchant_id, self._advance(txn.timestamp_ms)), txn, handover)

    def _advance(self, t: int) -> int:
        """Fold event time ``t`` into the newest seen (the TTL's clock) and run a sweep when one is due."""
        newest = self._newest
        if newest is None or t > newest:
            self._newest = newest = t
        if self.ttl_ms is not None:
            self._until_sweep -= 1
            if self._until_sweep <= 0:
                self.expire()
        return newest

    def _card(self, key: str, newest: int) -> CardState:
        """``key``'s card state as of ``newest``: a fresh one if it is new or was idle past the TTL."""
        card = self.cards.get(key)
        if card is None:
            card = self.cards[key] = CardState()
        elif self.ttl_ms is not None and card.t is not None and card.t < newest - self.ttl_ms:
            ids = card.ids
            card = self.cards[key] = CardState()
            card.ids = ids  # the id memory has its own window; this event's id may be in it
        return card

    def _merchant(self, key: str, newest: int) -> MerchantState:
        """``key``'s merchant state as of ``newest``: a fresh one if it is new or was idle past the TTL."""
        merchant = self.merchants.get(key)
        if merchant is None or (self.ttl_ms is not None and merchant.t is not None and merchant.t < newest - self.ttl_ms):
            merchant = self.merchants[key] = MerchantState()
        return merchant

    step = features  # the name training, the tests and older callers use

    def features_many(self, txns: Sequence[Transaction]) -> list[tuple[float, ...]]:
        """:meth:`features` of each of ``txns`` in order."""
        features = self.features
        return [features(t) for t in txns]

    def remember_id(self, txn: Transaction) -> int:
        """Whether ``txn``'s id is new to its card, a retry or a conflict (see :mod:`~fraudstream.model.features.ids`)."""
        card = self.cards.get(txn.card_id)
        if card is None:
            card = self.cards[txn.card_id] = CardState()
        return remember_id(card, txn)

    @property
    def newest_ms(self) -> int | None:
        """The newest event time folded in (None before the first)."""
        return self._newest

    def expire(self) -> int:
        """Drop cards and merchants idle for more than ``ttl_ms`` of event time; how many were dropped."""
        self._until_sweep = max(SWEEP_EVERY_MIN, len(self.cards) + len(self.merchants))
        if self.ttl_ms is None or self._newest is None:
            return 0
        idle_before = self._newest - self.ttl_ms
        # A card with an id newer than that was admitted and not yet stepped: keep it.
        cards = [key for key, card in self.cards.items()
                 if (card.t is None or card.t < idle_before) and all(seen[0] < idle_before for seen in card.ids.values())]
        merchants = [key for key, merchant in self.merchants.items() if merchant.t is not None and merchant.t < idle_before]
        for key in cards:
            del self.cards[key]
        for key in merchants:
            del self.merchants[key]
        return len(cards) + len(merchants)

    def snapshot(self) -> dict[str, Any]:
        """Plain lists and dicts (msgpack/JSON friendly), restored by :meth:`restore`."""
        return {
            "cards": {key: state.to_list() for key, state in self.cards.items()},
            "merchants": {key: state.to_list() for key, state in self.merchants.items()},
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the content with ``snapshot``'s (the TTL stays this store's)."""
        self.cards = {key: CardState.from_list(v) for key, v in snapshot["cards"].items()}
        self.merchants = {key: MerchantState.from_list(v) for key, v in snapshot["merchants"].items()}
        # The newest event's merchant always holds the newest time (it is never idle), so it need not be saved.
        self._newest = max((m.t for m in self.merchants.values() if m.t is not None), default=None)
        self._until_sweep = SWEEP_EVERY_MIN

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any], ttl_ms: int | None = None) -> FeatureState:
        """A new store holding ``snapshot``."""
        state = cls(ttl_ms)
        state.restore(snapshot)
        return state

    def sizes(self) -> StateSizes:
        """How many cards and merchants are held."""
        return StateSizes(len(self.cards), len(self.merchants))

    def __len__(self) -> int:
        return len(self.cards) + len(self.merchants)
