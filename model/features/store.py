"""The state-store seam: where a runtime keeps every card's and merchant's feature state.

The protocol lives in the pure core because the core calls it (:class:`~fraudstream.model.scoring.Scorer`,
training's feature matrix); backends that need a network or a file live in
``services/stores/state/`` and are found by name in its registry. The in-memory
:class:`~fraudstream.model.features.keyed.FeatureState` is the first implementation and the
reference; ``tests/contract/test_state_store_contract.py`` holds every implementation to it.

What a store promises:

- **One unit per event.** :meth:`StateStore.features` reads the card's and the merchant's state as
  of the event, applies :func:`~fraudstream.model.features.step.step` and writes both back together:
  the features equal the pure step's over the same events in the same order. A store whose
  ``thread_safe`` is true keeps that true when several threads call it at once.
- **Duplicate-id memory** (:meth:`StateStore.remember_id`) is part of the card's state: it is
  snapshotted, restored and expired with it.
- **Snapshot / restore**: plain lists and dicts (msgpack/JSON friendly); restoring a snapshot and
  continuing gives the features an uninterrupted store gives.
- **TTL in event time**: with ``ttl_ms`` set, a card or merchant whose newest event is more than
  ``ttl_ms`` older than the store's newest event is idle. An idle key's next event starts from a
  fresh state (its duplicate-id memory, bounded by its own window, is kept), and idle keys are
  dropped from memory by :meth:`StateStore.expire` — which a store may run whenever it likes
  (the memory store sweeps after as many updates as it holds keys, so each update pays for about
  one key check). Because the fresh start is decided at the event from event times alone, *when* a
  sweep runs never changes a feature: the features are a function of the events, their order and
  ``ttl_ms``. Use the same ``ttl_ms`` wherever features must agree (training, ``score``, runners).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from fraudstream.model.features.ids import ID_WINDOW_MS

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction


class StateSizes(NamedTuple):
    """How many keys a store holds (what its memory grows with)."""

    cards: int
    merchants: int


def check_ttl(ttl_ms: int | None) -> int | None:
    """``ttl_ms`` if usable: None (keys never expire) or at least the duplicate-id window (a day).

    Shorter would forget a card while its recent ids still matter.

    >>> check_ttl(None), check_ttl(90 * 86_400_000)
    (None, 7776000000)
    """
    if ttl_ms is not None and ttl_ms < ID_WINDOW_MS:
        raise ValueError(f"the state TTL must be at least {ID_WINDOW_MS} ms (the duplicate-id window), got {ttl_ms}")
    return ttl_ms


@runtime_checkable
class StateStore(Protocol):
    """Every card's and merchant's feature state, updated one event at a time (see the module docstring)."""

    @property
    def ttl_ms(self) -> int | None:
        """Idle keys expire after this much event time; None: never."""
        ...

    @property
    def thread_safe(self) -> bool:
        """True if calls from several threads at once keep each event one unit."""
        ...

    def features(self, txn: Transaction) -> tuple[float, ...]:
        """Features of ``txn`` (:data:`~fraudstream.model.features.step.FEATURE_NAMES`); its card's and
        merchant's state move past it, as one unit."""
        ...

    def features_many(self, txns: Sequence[Transaction]) -> list[tuple[float, ...]]:
        """:meth:`features` of each of ``txns`` in order (a remote backend can do it in one round trip)."""
        ...

    def remember_id(self, txn: Transaction) -> int:
        """NEW, RETRY or CONFLICT for ``txn``'s id on its card (see :mod:`~fraudstream.model.features.ids`)."""
        ...

    @property
    def newest_ms(self) -> int | None:
        """The newest event time the store has folded in (None before the first)."""
        ...

    def expire(self) -> int:
        """Drop the keys idle for more than ``ttl_ms`` now; returns how many were dropped (0 without a TTL)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """Everything the store holds, as plain lists and dicts, for :meth:`restore`."""
        ...

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the store's content with ``snapshot``'s."""
        ...

    def sizes(self) -> StateSizes:
        """How many cards and merchants the store holds."""
        ...

    def __len__(self) -> int:
        """Cards plus merchants held."""
        ...
