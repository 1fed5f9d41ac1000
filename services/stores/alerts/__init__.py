"""Alert stores: where flagged transactions go, keyed by transaction_id so every write is idempotent.

Adding a backend is one module here and one line in :mod:`fraudstream.services.stores.alerts.registry`.
"""

from fraudstream.services.stores.alerts.base import Alert, AlertStore
from fraudstream.services.stores.alerts.registry import open_store

__all__ = ["Alert", "AlertStore", "open_store"]
