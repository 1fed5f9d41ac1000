"""State stores by name: one line per backend, imported only when opened.

Every store is constructed with ``ttl_ms`` (idle keys expire after this much event time; None:
never) and its backend's own keyword options (a Redis store: its URL, key prefix, ...).

>>> store = open_state_store("memory", ttl_ms=None)
>>> store.thread_safe, len(store)
(False, 0)
"""

from __future__ import annotations

import importlib
from typing import Any

from fraudstream.model.errors import InputError
from fraudstream.model.features.store import StateStore

# name -> "module:Class". One line per backend.
STATE_STORES: dict[str, str] = {
    "memory": "fraudstream.model.features.keyed:FeatureState",
    "redis": "fraudstream.services.stores.state.redis:RedisStateStore",
}


class UnknownStateStore(InputError, ValueError):
    """A caller names a state store this fraudstream does not have."""


def open_state_store(kind: str = "memory", *, ttl_ms: int | None = None, **options: Any) -> StateStore:
    """A new, empty store of ``kind`` (its content comes from events or :meth:`StateStore.restore`)."""
    target = STATE_STORES.get(kind)
    if target is None:
        raise UnknownStateStore(f"unknown state store {kind!r}; this fraudstream knows {', '.join(sorted(STATE_STORES))}")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    store: StateStore = cls(ttl_ms=ttl_ms, **options)
    return store
