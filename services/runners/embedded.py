"""The embedded runner: one process, no servers — source → validate → score → alert store.

It batches rows for throughput, writes each batch's alerts and dead letters in one atomic store
write, and checkpoints (position + feature state) only after the store has them. A restart after
``kill -9`` resumes from the last checkpoint; replayed rows rewrite identical, idempotent rows.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.schema import InvalidTransaction, Transaction, to_record, validate
from fraudstream.model.scoring import Scorer
from fraudstream.services.runners.checkpoint import Checkpoint, CheckpointFile, CheckpointMismatch
from fraudstream.services.runners.store_writes import FIRST_CONTACT_S, StoreWait, write_batch
from fraudstream.services.sources.base import IDLE, Source
from fraudstream.services.stores.alerts.base import Alert, AlertStore
from fraudstream.services.stores.dead_letters import RECORD_LEVEL, DeadLetter

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle
    from fraudstream.model.policy import Decision

COUNTERS = ("read", "scored", "alerts", "dead_letters")


class _StoppedWhileStoreDown(Exception):
    """Stop was asked while the store was down: leave without advancing (the batch is redone on restart)."""


@dataclass
class RunStats:
    """Live counters of a run, for the live view, metrics and the final summary."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    position: int = 0
    resumed_from: int = 0
    started: float = field(default_factory=time.perf_counter)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    recent_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=10))
    dead_letter_fields: Counter[str] = field(default_factory=Counter)
    finished: bool = False
    lag: int | None = None  # messages behind the source's end, where the source can tell

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def rate(self) -> float:
        """Rows read per second in this process (resumed rows excluded)."""
        elapsed = self.elapsed_s
        return (self.position - self.resumed_from) / elapsed if elapsed > 0 else 0.0

    def latency_ms(self, quantile: float) -> float | None:
        """Arrival-to-decision latency quantile in milliseconds (decision = alert store committed)."""
        if not self.latencies_s:
            return None
        return float(np.quantile(np.fromiter(self.latencies_s, float), quantile) * 1000)


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
        first_contact_s: float | None = FIRST_CONTACT_S,
    ) -> None:
        self.source, self.bundle, self.store, self.checkpoint = source, bundle, store, checkpoint
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
        self._txns: list[Transaction] = []
        self._arrivals: list[float] = []
        self._letters: list[DeadLetter] = []
        self._saved_at, self._saved_position = time.perf_counter(), position
        self._reported_at = 0.0
        name = self.source.name
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
            data = item.data  # type: ignore[union-attr]
            if data is None:
                letters.append(DeadLetter(name, str(pending_position), None, item.error or "unreadable row", item.raw))  # type: ignore[union-attr]
            else:
                try:
                    txns.append(validate(data))
                    arrivals.append(clock())
                except InvalidTransaction as error:
                    raw = item.raw or json.dumps(data, default=str, ensure_ascii=False)  # type: ignore[union-attr]
                    letters.append(DeadLetter(name, str(pending_position), error.field, error.reason, raw))
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

    def _resume(self) -> tuple[FeatureState, int]:
        if self.checkpoint is None:
            return FeatureState(), 0
        saved = self.checkpoint.load()
        if saved is None:
            return FeatureState(), 0
        if saved.source != self.source.name:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint.path} is for {saved.source!r}, not {self.source.name!r}; "
                "start fresh (--fresh) or point --checkpoint elsewhere"
            )
        if saved.model_version != self.bundle.version:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint.path} was made with model {saved.model_version}, "
                f"this run uses {self.bundle.version}; start fresh (--fresh)"
            )
        self.stats.counters.update(saved.counters)
        return FeatureState.restore(saved.state), saved.position

    def _flush(self, position: int) -> None:
        """Score the batch, store alerts and dead letters atomically, then advance the position."""
        txns, letters, stats = self._txns, self._letters, self.stats
        decisions = self._scorer.decide_batch(txns)
        alerts = [self._alert(txn, d) for txn, d in zip(txns, decisions) if d.alert]
        if not write_batch(self.store, alerts, letters, wait=self._wait):
            raise _StoppedWhileStoreDown
        now = time.perf_counter()
        stats.latencies_s.extend([now - a for a in self._arrivals])
        counters = stats.counters
        counters["read"] += position - stats.position
        counters["scored"] += len(txns)
        counters["alerts"] += len(alerts)
        counters["dead_letters"] += len(letters)
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

    def _alert(self, txn: Transaction, decision: Decision) -> Alert:
        return Alert(
            transaction_id=txn.transaction_id,
            timestamp_ms=txn.timestamp_ms,
            card_id=txn.card_id,
            merchant_id=txn.merchant_id,
            amount=txn.amount,
            score=decision.score,
            threshold=self.bundle.threshold,
            reasons=decision.reasons,
            model_version=self.bundle.version,
            record=to_record(txn),
        )

    def _save_checkpoint(self) -> None:
        stats = self.stats
        if self.checkpoint is not None and stats.position != self._saved_position:
            self.checkpoint.save(
                Checkpoint(
                    source=self.source.name,
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
