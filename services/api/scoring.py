"""Scoring one request's transactions with the pipeline core: the same intake, features and decision as
every runner, over a state store shared by the process (or by every process, with a remote store).

Per transaction: :class:`~fraudstream.services.pipeline.core.Intake` admits it (contract, event-time
window, duplicate ids — a refused one is a dead letter whose field and reason are the API's 422), the
:class:`~fraudstream.model.scoring.Scorer` decides, and an alert becomes
:func:`~fraudstream.services.pipeline.core.alert_record` for the alert store.

Retries: the intake's duplicate-id memory says whether a transaction was seen (same id, same content);
the :class:`~.answers.AnswerCache` gives back the first answer. A retry whose answer is no longer
cached (evicted, or answered by another process sharing the state) gets the stored alert if it was
one, else ``alert: false`` with ``score: null`` — it is never scored twice.

Degraded mode: when the state store fails, that transaction is admitted and scored over a fresh empty
state (what a card's first transaction gets), and the answer says ``state_available: false``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fraudstream.model.bundle import ModelBundle
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore
from fraudstream.model.policy import Decision
from fraudstream.model.schema import Transaction
from fraudstream.model.scoring import Scorer
from fraudstream.services.api.answers import AnswerCache
from fraudstream.services.api.metrics import ApiMetrics
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import DUPLICATE, EventTimeWindow, Intake, alert_record, unreadable
from fraudstream.services.stores.alerts.base import Alert, AlertStore, RejectedDocuments
from fraudstream.services.stores.dead_letters import DeadLetter
from fraudstream.services.stores.state.registry import open_state_store

log = logging.getLogger(__name__)
SOURCE = "api"
_decode = msgspec.json.Decoder().decode
MAX_PENDING = 100_000  # alerts kept while the alert store is down; beyond, the oldest are logged and dropped
CONFLICT_FIELD = "transaction_id"


def open_state(url: str, ttl_ms: int | None) -> StateStore:
    """The state store named by ``url``: ``memory`` (this process's own) or ``SCHEME://…`` (the registry's
    store of that name, given the URL: ``redis://host:6379/0`` opens the Redis store)."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return open_state_store(url, ttl_ms=ttl_ms)
    if scheme == "memory":
        return open_state_store("memory", ttl_ms=ttl_ms)
    return open_state_store("redis" if scheme == "rediss" else scheme, ttl_ms=ttl_ms, url=url)


@dataclass
class Outcome:
    """What one transaction of a request came to: an answer (200) or a refusal (its status and reason)."""

    status: int
    body: dict[str, Any]
    retry: bool = False
    alert: Alert | None = None
    letter: DeadLetter | None = None


@dataclass
class Pending:
    """Alerts and dead letters the alert store did not take yet (retried with the next write)."""

    alerts: list[Alert] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


class ScoringService:
    """One process's scorer: the model, the state store, the intake over it, the answers given, the alert store."""

    def __init__(self, bundle: ModelBundle, state: StateStore, store: AlertStore, metrics: ApiMetrics, *,
                 window: EventTimeWindow | None = None, card_ids: CardIds | None = None, answer_cache: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.bundle, self.state, self.store, self.metrics = bundle, state, store, metrics
        self.window, self.card_ids, self.clock = window, card_ids, clock
        self.intake = Intake(SOURCE, state, window=window, clock=clock, card_ids=card_ids)
        self.scorer = Scorer(bundle, state)
        self.answers = AnswerCache(answer_cache)
        # The in-memory store (and the intake's window bookkeeping) are not thread-safe: one request at a time.
        self._lock: threading.Lock | None = None if getattr(state, "thread_safe", False) else threading.Lock()
        self._pending = Pending()
        self._write_lock = threading.Lock()
        self._numbers = itertools.count(1)  # next() on it is atomic: safe from the worker threads
        # dead letters are keyed by source and position: unique across restarts and processes
        self._prefix = f"{int(clock() * 1000)}-{os.getpid()}-"

    @property
    def thread_safe(self) -> bool:
        """True when requests may run in parallel threads without the service's lock (a shared remote store)."""
        return self._lock is None

    @contextlib.contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    # ------------------------------------------------------------------ scoring

    def score_json(self, payload: bytes) -> Outcome:
        """One transaction sent as a JSON object."""
        start = time.perf_counter()
        position = self._position()
        try:
            data = _decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            return self._refused(unreadable(SOURCE, position, payload, f"not valid JSON: {error}"))
        if type(data) is not dict:
            return self._refused(unreadable(SOURCE, position, payload, "the message is not a JSON object"))
        return self.score_one(data, start, position)

    def score_many(self, items: list[Any]) -> list[Outcome]:
        """Each of a batch's transactions, in order (each answered or refused on its own)."""
        outcomes = []
        for item in items:
            start = time.perf_counter()
            position = self._position()
            if type(item) is not dict:
                outcomes.append(self._refused(unreadable(SOURCE, position, repr(item), "the message is not a JSON object")))
            else:
                outcomes.append(self.score_one(item, start, position))
        return outcomes

    def score_one(self, data: Mapping[str, Any], start: float | None = None, position: str | None = None) -> Outcome:
        """Admit, decide and answer one parsed transaction."""
        start = time.perf_counter() if start is None else start
        position = self._position() if position is None else position
        with self._serialised():
            admitted, available = self._admit(position, data)
            if isinstance(admitted, DeadLetter):
                return self._refused(admitted)
            if not available and isinstance(admitted, Transaction):
                # The duplicate-id memory is out of reach: a retry answered before the outage gets that answer.
                first = self.answers.get(admitted.transaction_id)
                if first is not None:
                    self.metrics.retries.inc()
                    return Outcome(200, first, retry=True)
            if admitted is DUPLICATE:
                tid = str(data.get("transaction_id"))
                first = self.answers.get(tid)
                if first is not None:
                    self.metrics.retries.inc()
                    return Outcome(200, first, retry=True)
                txn = None
            else:
                assert isinstance(admitted, Transaction)
                txn = admitted
                decision, available = self._decide(txn, available)
                body = self._answer(txn, decision, available, start)
                self.answers.put(txn.transaction_id, body)
        if txn is None:
            self.metrics.retries.inc()
            return Outcome(200, self._evicted_retry(tid, start), retry=True)
        self.metrics.decisions.labels("alert" if decision.alert else "pass").inc()
        alert = alert_record(txn, decision, self.bundle) if decision.alert else None
        return Outcome(200, body, alert=alert)

    def _position(self) -> str:
        return self._prefix + str(next(self._numbers))

    def _admit(self, position: str, data: Mapping[str, Any]) -> tuple[Any, bool]:
        try:
            return self.intake.admit(position, data), True
        except Exception as error:  # the state store failed (validation never raises: it returns a dead letter)
            self._state_failed(error)
            fresh = Intake(SOURCE, FeatureState(), window=self.window, clock=self.clock, card_ids=self.card_ids)
            return fresh.admit(position, data), False

    def _decide(self, txn: Transaction, available: bool) -> tuple[Decision, bool]:
        if available:
            try:
                return self.scorer.decide(txn), True
            except Exception as error:
                self._state_failed(error)
        return Scorer(self.bundle, FeatureState()).decide(txn), False

    def _state_failed(self, error: Exception) -> None:
        self.metrics.state_errors.inc()
        log.warning("state store failed (%s); answering from the transaction alone", type(error).__name__)

    def _answer(self, txn: Transaction, decision: Decision, available: bool, start: float) -> dict[str, Any]:
        return {
            "transaction_id": txn.transaction_id,
            "score": decision.score,
            "alert": decision.alert,
            "threshold": self.bundle.threshold,
            "reasons": list(decision.reasons),
            "model_version": self.bundle.version,
            "state_available": available,
            "processing_ms": round((time.perf_counter() - start) * 1000, 3),
        }

    def _evicted_retry(self, tid: str, start: float) -> dict[str, Any]:
        """A retry whose first answer is not cached here: the stored alert if it was one; else a pass, unscored."""
        stored = None
        try:
            stored = self.store.get(tid)
        except Exception as error:
            log.warning("alert store failed on a retry's lookup (%s)", type(error).__name__)
        if stored is not None:
            return {"transaction_id": tid, "score": stored.score, "alert": True, "threshold": stored.threshold,
                    "reasons": list(stored.reasons), "model_version": stored.model_version, "state_available": True,
                    "processing_ms": round((time.perf_counter() - start) * 1000, 3)}
        return {"transaction_id": tid, "score": None, "alert": False, "threshold": self.bundle.threshold,
                "reasons": [], "model_version": self.bundle.version, "state_available": True,
                "processing_ms": round((time.perf_counter() - start) * 1000, 3)}

    def _refused(self, letter: DeadLetter) -> Outcome:
        self.metrics.invalid.labels(letter.field or "body").inc()
        conflict = letter.field == CONFLICT_FIELD and "already used" in letter.reason
        body = {"error": "conflict" if conflict else "invalid transaction", "field": letter.field, "reason": letter.reason}
        return Outcome(409 if conflict else 422, body, letter=letter)

    # ------------------------------------------------------------------ the alert store

    def write(self, alerts: list[Alert], letters: list[DeadLetter]) -> bool:
        """Store alerts and dead letters (idempotent by transaction_id); on failure keep them for the next write.

        Returns whether everything waiting was stored. Blocking: call it from a worker thread."""
        with self._write_lock:
            pending = self._pending
            pending.alerts.extend(alerts)
            pending.letters.extend(letters)
            if not pending.alerts and not pending.letters:
                return True
            try:
                self.store.write(pending.alerts, pending.letters)
            except RejectedDocuments as error:  # the rest were stored; these never will be
                log.error("alert store refused %d document(s) for good: %s", len(error.rejected),
                          ", ".join(tid for tid, _ in error.rejected[:20]))
            except Exception as error:
                self.metrics.alert_store_errors.inc()
                if len(pending.alerts) > MAX_PENDING:
                    dropped = pending.alerts[: len(pending.alerts) - MAX_PENDING]
                    log.error("alert store down too long: dropping %d alert(s): %s", len(dropped),
                              ", ".join(a.transaction_id for a in dropped[:20]))
                    del pending.alerts[: len(dropped)]
                    del pending.letters[: max(0, len(pending.letters) - MAX_PENDING)]
                self.metrics.pending_alerts.set(len(pending.alerts))
                log.warning("alert store write failed (%s); %d alert(s) kept for the next write",
                            type(error).__name__, len(pending.alerts))
                return False
            self._pending = Pending()
            self.metrics.pending_alerts.set(0)
            return True

    @property
    def pending(self) -> int:
        return len(self._pending.alerts) + len(self._pending.letters)
