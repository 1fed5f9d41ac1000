"""All cards' and merchants' feature state in one place: what a runner owns, checkpoints and restores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraudstream.model.features.ids import remember_id
from fraudstream.model.features.state import CardState, MerchantState
from fraudstream.model.features.step import step

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction


class FeatureState:
    """Maps card and merchant ids to their state and runs :func:`step` against them."""

    __slots__ = ("cards", "merchants")

    def __init__(self) -> None:
        self.cards: dict[str, CardState] = {}
        self.merchants: dict[str, MerchantState] = {}

    def step(self, txn: Transaction) -> tuple[float, ...]:
        """Features of ``txn``; its card's and merchant's state move past it."""
        card = self.cards.get(txn.card_id)
        if card is None:
            card = self.cards[txn.card_id] = CardState()
        merchant = self.merchants.get(txn.merchant_id)
        if merchant is None:
            merchant = self.merchants[txn.merchant_id] = MerchantState()
        return step(card, merchant, txn)

    def remember_id(self, txn: Transaction) -> int:
        """Whether ``txn``'s id is new to its card, a retry or a conflict (see :mod:`~fraudstream.model.features.ids`)."""
        card = self.cards.get(txn.card_id)
        if card is None:
            card = self.cards[txn.card_id] = CardState()
        return remember_id(card, txn)

    def snapshot(self) -> dict[str, Any]:
        """Plain lists and dicts (msgpack/JSON friendly), restored by :meth:`restore`."""
        return {
            "cards": {key: state.to_list() for key, state in self.cards.items()},
            "merchants": {key: state.to_list() for key, state in self.merchants.items()},
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> FeatureState:
        state = cls()
        state.cards = {key: CardState.from_list(v) for key, v in snapshot["cards"].items()}
        state.merchants = {key: MerchantState.from_list(v) for key, v in snapshot["merchants"].items()}
        return state
