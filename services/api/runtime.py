"""What one API process holds: the model bundle (loaded once, at start), the state and alert stores, the
scoring service over them. ``start`` is idempotent and the shutdown only flushes, so an adapter that runs
the app's startup and shutdown around every call (Mangum on Lambda) still loads the model once per process."""

from __future__ import annotations

import logging
import threading

from fraudstream.services.api.metrics import ApiMetrics
from fraudstream.services.api.scoring import ScoringService, open_state
from fraudstream.services.settings import Settings

log = logging.getLogger(__name__)


class Runtime:
    """Loads and holds the process's model and stores; ``service`` is None until :meth:`start` succeeded."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.service: ScoringService | None = None
        self._lock = threading.Lock()

    def start(self) -> ScoringService:
        """Load the bundle and open the stores (once); raises what they raise (a missing model ends the start)."""
        with self._lock:
            if self.service is not None:
                return self.service
            from fraudstream.model.bundle import load_bundle
            from fraudstream.services.pipeline import card_key
            from fraudstream.services.pipeline.core import EventTimeWindow
            from fraudstream.services.stores.alerts import open_store

            s = self.settings
            bundle = load_bundle(s.paths.model)
            state = open_state(s.api.state, s.api.state_ttl_ms)
            store = open_store(s.store.url, s)
            secret = s.card_ids.key

            window = EventTimeWindow(s.pipeline.not_before_ms, round(s.pipeline.max_ahead_hours * 3_600_000))
            card_ids = card_key.card_ids(lambda: secret.get_secret_value() if secret is not None else None)
            self.service = ScoringService(bundle, state, store, self.metrics, window=window, card_ids=card_ids,
                                          answer_cache=s.api.answer_cache)
            self.metrics.model.labels(bundle.version).set(1)
            log.info("model %s loaded; state store %s; alert store ready", bundle.version, type(state).__name__)
            return self.service

    def flush(self) -> None:
        """Hand waiting alerts to the store (the app's shutdown). The model and the stores stay loaded: an
        adapter that runs the startup and shutdown around every event (Mangum's default on Lambda) must not
        reload the bundle each time; the process's end releases them."""
        service = self.service
        if service is not None and service.pending and not service.write([], []):
            log.error("shutting down with %d alert(s)/dead letter(s) the alert store has not taken", service.pending)

    def close(self) -> None:
        """Flush, then close the stores and forget the model (``start`` loads them again)."""
        self.flush()
        with self._lock:
            service, self.service = self.service, None
        if service is None:
            return
        for name, part in (("alert store", service.store), ("state store", service.state)):
            close = getattr(part, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception as error:  # shutting down anyway: say so, and close the rest
                log.warning("closing the %s failed (%s)", name, type(error).__name__)
