"""The embedded runner: one process, no servers — source → validate → score → alert store.

It batches rows for throughput, writes each batch's alerts and dead letters in one atomic store
write, and checkpoints (position + feature state) only after the store has them. A restart after
``kill -9`` resumes from the last checkpoint; replayed rows rewrite identical, idempotent rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fraudstream.model.features.store import StateStore
from fraudstream.model.features.step import FEATURES_VERSION
from fraudstream.model.schema import Transaction
from fraudstream.model.scoring import Scorer
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import DUPLICATE, EventTimeWindow, Intake, alert_record
from fraudstream.services.runners.checkpoint import Checkpoint, CheckpointFile, CheckpointMismatch
from fraudstream.services.runners.stats import RunStats
from fraudstream.services.runners.store_writes import FIRST_CONTACT_S, StoreWait, write_batch
from fraudstream.services.sources.base import IDLE, Source
from fraudstream.services.stores.alerts.base import AlertStore
from fraudstream.services.stores.dead_letters import RECORD_LEVEL, DeadLetter
from fraudstream.services.stores.state.registry import open_state_store

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle


class _StoppedWhileStoreDown(Exception):
    """Stop was asked while the store was down: leave without advancing (the batch is redone on restart)."""


class EmbeddedRunner:
    """Drives the pure pipeline over one source into one alert store."""

    def __init__(
        self,
        source: Source,
        bundle: ModelBundle,
        store: AlertStore,
        checkpoint: CheckpointFile | None = None,
        *,
        batch_size: int = 2000,
        checkpoint_rows: int = 500_000,
        checkpoint_seconds: float = 30.0,
        on_progress: Callable[[RunStats], None] | None = None,
        progress_seconds: float = 0.25,
        initial_state: StateStore | None = None,
        initial_position: int = 0,
        window: EventTimeWindow | None = None,
        first_contact_s: float | None = FIRST_CONTACT_S,
        state_store: str = "memory",
        state_ttl_ms: int | None = None,
        card_ids: CardIds | None = None,
    ) -> None:
        self.source, self.bundle, self.store, self.checkpoint = source, bundle, store, checkpoint
        self.card_ids = card_ids  # card numbers -> keyed ids (None: a card number stops the run, see Intake)
        # where a run without a checkpoint starts: a warm-up's state, after the rows it already covered
        self.initial_state, self.initial_position = initial_state, initial_position
        self.window = window
        # where the feature state lives (a name in services/stores/state/registry.py) and its idle-key TTL
        self.state_store, self.state_ttl_ms = state_store, state_ttl_ms
        self.batch_size = batch_size
        self.checkpoint_rows, self.checkpoint_seconds = checkpoint_rows, checkpoint_seconds
        self.on_progress, self.progress_seconds = on_progress, progress_seconds
        self.stats = RunStats()
        self._stopping = False
        self.first_contact_s = first_contact_s

    def stop(self) -> None:
        """Ask the run to finish its batch, checkpoint and return (safe from a signal handler). While the store
        is down it returns at once instead: the batch was not stored, and the checkpoint stays where it was."""
        self._stopping = True

    def run(self) -> RunStats:
        """Process the source to its end (or until :meth:`stop`), then checkpoint; returns the stats.

        Raises :class:`~.store_writes.StoreNeverAnswered` (checkpoint untouched) if the store never answers
        within ``first_contact_s``."""
        self._wait = StoreWait(self.store, lambda: self._stopping, self.first_contact_s)
        try:
            return self._run()
        except _StoppedWhileStoreDown:
            self._report(force=True)
            return self.stats

    def _run(self) -> RunStats:
        state, position = self._resume()
        stats = self.stats
        stats.position = stats.resumed_from = position
        self._scorer = Scorer(self.bundle, state)
        admit = Intake(self.source.name, state, window=self.window, card_ids=self.card_ids).admit
        self._txns: list[Transaction] = []
        self._arrivals: list[float] = []
        self._letters: list[DeadLetter] = []
        self._duplicates = 0
        self._saved_at, self._saved_position = time.perf_counter(), position
        self._reported_at = 0.0
        txns, arrivals, letters = self._txns, self._arrivals, self._letters
        clock = time.perf_counter
        batch_size = self.batch_size
        pending, pending_position = 0, position  # rows read but not yet flushed, and the last one's position
        ended = False
        for item in self.source.rows(after=position):
            if item is IDLE:
                if pending:
                    self._flush(pending_position)
                    pending = 0
                if self._stopping:
                    break
                continue
            pending_position = item.position  # type: ignore[union-attr]
            outcome = admit(pending_position, item.data, item.raw or None, item.error)  # type: ignore[union-attr]
            if type(outcome) is Transaction:
                txns.append(outcome)
                arrivals.append(clock())
            elif outcome is DUPLICATE:
                self._duplicates += 1
            else:
                letters.append(outcome)  # type: ignore[arg-type]
            pending += 1
            if pending >= batch_size or self._stopping:
                self._flush(pending_position)
                pending = 0
                if self._stopping:
                    break
        else:
            ended = True  # finished only once the last rows are stored, not when a stop cut their write short
        if pending:
            self._flush(pending_position)
        stats.finished = ended
        self._save_checkpoint()
        self._report(force=True)
        return stats

    def _resume(self) -> tuple[StateStore, int]:
        if self.checkpoint is None or (saved := self.checkpoint.load()) is None:
            state = self.initial_state if self.initial_state is not None else self._new_state()
            return state, self.initial_position
        if saved.source != self.source.name:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint.path} is for {saved.source!r}, not {self.source.name!r}; "
                "start fresh (--fresh) or point --checkpoint elsewhere"
            )
        if saved.features_version != FEATURES_VERSION:
            # A retrained model is fine (the state is the features', not the model's); other features are not.
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint.path} holds feature state of features version {saved.features_version}, "
                f"this fraudstream computes {FEATURES_VERSION}; start fresh (--fresh)"
            )
        self.stats.counters.update(saved.counters)
        state = self._new_state()
        state.restore(saved.state)
        return state, saved.position

    def _new_state(self) -> StateStore:
        return open_state_store(self.state_store, ttl_ms=self.state_ttl_ms)

    def _flush(self, position: int) -> None:
        """Score the batch, store alerts and dead letters atomically, then advance the position."""
        txns, letters, stats = self._txns, self._letters, self.stats
        decisions = self._scorer.decide_batch(txns)
        bundle = self.bundle
        alerts = [alert_record(txn, d, bundle) for txn, d in zip(txns, decisions) if d.alert]
        if not write_batch(self.store, alerts, letters, wait=self._wait):
            raise _StoppedWhileStoreDown
        now = time.perf_counter()
        stats.latencies_s.extend([now - a for a in self._arrivals])
        counters = stats.counters
        counters["read"] += position - stats.position
        counters["scored"] += len(txns)
        counters["alerts"] += len(alerts)
        counters["dead_letters"] += len(letters)
        counters["duplicates"] += self._duplicates
        self._duplicates = 0
        stats.recent_alerts.extend(alerts)
        stats.dead_letter_fields.update(letter.field or RECORD_LEVEL for letter in letters)
        stats.position = position
        txns.clear()
        letters.clear()
        self._arrivals.clear()
        if (
            position - self._saved_position >= self.checkpoint_rows
            or now - self._saved_at >= self.checkpoint_seconds
        ):
            self._save_checkpoint()
        self._report()

    def _save_checkpoint(self) -> None:
        stats = self.stats
        if self.checkpoint is not None and stats.position != self._saved_position:
            self.checkpoint.save(
                Checkpoint(
                    source=self.source.name,
                    features_version=FEATURES_VERSION,
                    model_version=self.bundle.version,
                    position=stats.position,
                    counters=dict(stats.counters),
                    state=self._scorer.state.snapshot(),
                )
            )
        self._saved_at, self._saved_position = time.perf_counter(), stats.position

    def _report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        if force or now - self._reported_at >= self.progress_seconds:
            self._reported_at = now
            self.on_progress(self.stats)
