"""Feature-state stores: where a runtime keeps every card's and merchant's state (the :class:`StateStore` seam).

The protocol is in the core (:mod:`fraudstream.model.features.store`), which calls it; the
in-memory store is the core's :class:`~fraudstream.model.features.keyed.FeatureState`. Adding a
backend is one module here, one line in :mod:`~fraudstream.services.stores.state.registry`, and its
case in ``tests/contract/test_state_store_contract.py``.
"""

from fraudstream.model.features.store import StateSizes, StateStore
from fraudstream.services.stores.state.errors import StateStoreUnavailable
from fraudstream.services.stores.state.registry import STATE_STORES, open_state_store

__all__ = ["STATE_STORES", "StateSizes", "StateStore", "StateStoreUnavailable", "open_state_store"]
