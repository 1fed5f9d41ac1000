"""The alert-store interface every backend implements: idempotent writes, search, aggregations, labels.

Every backend (SQLite, in-memory, Elasticsearch, OpenSearch) answers the same questions the same way;
one contract suite (tests/contract) runs unchanged against each. Results sort newest / highest first,
ties broken by transaction_id (descending), and pages are chained with an opaque cursor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fraudstream.model.errors import InputError, ServiceError
from fraudstream.services.stores.dead_letters import DeadLetter

LABELS = ("fraud", "legitimate", "unsure")
UNLABELLED = "unlabelled"  # a query value: alerts nobody has reviewed yet
SORTS = ("time", "score", "amount")
ENTITIES = ("card", "merchant")
GROUPINGS = ("merchant_category", "country", "channel", "hour")
HOUR_MS = 3_600_000


class AlertNotFound(InputError, KeyError):
    """No alert with that transaction_id."""


class StoreUnavailable(ServiceError, ConnectionError):
    """The store cannot be reached or keeps failing: nothing of the batch may be assumed stored; retry later."""


class RejectedDocuments(InputError, ValueError):
    """The store refused some alerts for good (e.g. a location out of range); the rest were stored."""

    def __init__(self, rejected: Sequence[tuple[str, str]]) -> None:
        self.rejected = list(rejected)  # (transaction_id, reason)
        shown = "; ".join(f"{tid}: {reason}" for tid, reason in self.rejected[:5])
        more = f" (+{len(self.rejected) - 5} more)" if len(self.rejected) > 5 else ""
        super().__init__(f"{len(self.rejected)} alert(s) rejected by the store: {shown}{more}")


@dataclass(frozen=True)
class Alert:
    """A flagged transaction: the canonical record, the model's verdict and the analyst's label."""

    transaction_id: str
    timestamp_ms: int
    card_id: str
    merchant_id: str
    amount: float
    score: float
    threshold: float
    reasons: tuple[str, ...]
    model_version: str
    record: dict[str, Any] = field(default_factory=dict)  # the canonical transaction, extras included
    label: str | None = None  # current label (LABELS), None until reviewed
    labelled_by: str | None = None
    labelled_at_ms: int | None = None
    label_note: str | None = None

    def field(self, name: str) -> Any:
        """A record field (``merchant_category``, ``country``, ``channel``, coordinates), or None."""
        return self.record.get(name)

    @property
    def hour(self) -> int:
        """Hour of day (UTC) of the event, for the by-hour view."""
        return (self.timestamp_ms // HOUR_MS) % 24


@dataclass(frozen=True)
class LabelEvent:
    """One analyst decision, kept forever as the audit trail."""

    transaction_id: str
    label: str
    analyst: str
    at_ms: int
    note: str = ""


@dataclass(frozen=True)
class AlertQuery:
    """Filters, all optional and combined with AND; ranges are inclusive, time is [start_ms, end_ms)."""

    card_id: str | None = None
    merchant_id: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    label: str | None = None  # one of LABELS, or UNLABELLED
    text: str | None = None  # case-insensitive words that must all appear in the reasons

    def __post_init__(self) -> None:
        if self.label is not None and self.label not in (*LABELS, UNLABELLED):
            raise ValueError(f"label must be one of {', '.join((*LABELS, UNLABELLED))}, got {self.label!r}")

    def words(self) -> list[str]:
        return [w.lower() for w in (self.text or "").split()]

    def matches(self, alert: Alert) -> bool:
        """The reference semantics of every filter (the in-memory store uses it; the contract checks it)."""
        if self.card_id is not None and alert.card_id != self.card_id:
            return False
        if self.merchant_id is not None and alert.merchant_id != self.merchant_id:
            return False
        if self.min_score is not None and alert.score < self.min_score:
            return False
        if self.max_score is not None and alert.score > self.max_score:
            return False
        if self.min_amount is not None and alert.amount < self.min_amount:
            return False
        if self.max_amount is not None and alert.amount > self.max_amount:
            return False
        if self.start_ms is not None and alert.timestamp_ms < self.start_ms:
            return False
        if self.end_ms is not None and alert.timestamp_ms >= self.end_ms:
            return False
        if self.label is not None and (alert.label or UNLABELLED) != self.label:
            return False
        text = " ".join(alert.reasons).lower()
        return all(word in text for word in self.words())


@dataclass(frozen=True)
class RunnerStatus:
    """One heartbeat of a pipeline runner: its counters since it started (wall-clock times), from which the
    dashboard shows throughput and alert rate. Keyed by (runner, at_ms), so writing one twice keeps one."""

    runner: str  # who reports, e.g. "generator@host:1234"
    at_ms: int
    started_at_ms: int
    read: int
    scored: int
    alerts: int
    dead_letters: int
    rows_per_s: float
    lag: int | None = None  # messages behind the source's end, where the source can tell
    finished: bool = False

    @property
    def alerts_per_1000(self) -> float | None:
        """Alerts per 1,000 scored transactions over the run, None before anything was scored."""
        return self.alerts * 1000 / self.scored if self.scored else None


MAX_STATUSES = 10_000  # heartbeats one read returns at most (the newest ones)


@dataclass(frozen=True)
class Page:
    """One page of search results; pass ``cursor`` back to get the next one (None: no more)."""

    alerts: list[Alert]
    total: int
    cursor: str | None


@dataclass(frozen=True)
class EntityStat:
    """A card or merchant with its alert count and alerted amount."""

    key: str
    alerts: int
    amount: float


def sort_key(alert: Alert, sort: str) -> tuple[Any, str]:
    """The sort value of ``alert`` under ``sort`` (descending), ties by transaction_id (descending)."""
    value = {"time": alert.timestamp_ms, "score": alert.score, "amount": alert.amount}[sort]
    return (value, alert.transaction_id)


def encode_cursor(alert: Alert, sort: str) -> str:
    return json.dumps([sort, *sort_key(alert, sort)])


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    """``(value, transaction_id)`` of the last alert of the previous page; ValueError if not ours."""
    try:
        kind, value, tid = json.loads(cursor)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a search cursor: {cursor!r}") from error
    if kind != sort:
        raise ValueError(f"cursor is for sort {kind!r}, not {sort!r}")
    return value, tid


def check_search(sort: str, limit: int) -> None:
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000, got {limit}")


def check_label(label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")


class AlertStore(Protocol):
    """Idempotent by transaction_id: writing the same alert twice leaves one, and keeps its label."""

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        """Store a batch (all of it, or raise). Re-writing an alert never clears its label."""

    def get(self, transaction_id: str) -> Alert | None: ...

    def search(self, query: AlertQuery = AlertQuery(), sort: str = "time", limit: int = 50, cursor: str | None = None) -> Page:
        """Matching alerts, best first by ``sort`` (time, score or amount), ``limit`` per page."""

    def count_alerts(self, query: AlertQuery | None = None) -> int: ...

    def set_label(self, transaction_id: str, label: str, analyst: str, at_ms: int, note: str = "") -> Alert:
        """Record an analyst's decision (audit trail) and make it the alert's current label."""

    def label_history(self, transaction_id: str) -> list[LabelEvent]:
        """Every label event of an alert, oldest first."""

    def alerts_over_time(self, query: AlertQuery, interval_ms: int) -> list[tuple[int, int]]:
        """``(bucket start ms, alerts)`` for each non-empty bucket, buckets aligned to multiples of interval."""

    def top_entities(self, entity: Literal["card", "merchant"], query: AlertQuery, by: str = "count", limit: int = 10) -> list[EntityStat]:
        """Cards or merchants with the most alerts (``by="count"``) or alerted amount (``by="amount"``)."""

    def histogram(self, field: Literal["score", "amount"], query: AlertQuery, edges: Sequence[float]) -> list[int]:
        """Alerts per bin ``[edges[i], edges[i+1])`` (the last bin includes its upper edge)."""

    def count_by(self, field: str, query: AlertQuery) -> dict[str, int]:
        """Alerts per merchant_category, country, channel or hour ("00".."23", UTC); missing values are "unknown"."""

    def count_dead_letters(self) -> int: ...

    def write_status(self, status: RunnerStatus) -> None:
        """Keep a runner's heartbeat (idempotent by runner and at_ms)."""

    def runner_statuses(self, since_ms: int = 0) -> list[RunnerStatus]:
        """Heartbeats at or after ``since_ms``, oldest first (the newest MAX_STATUSES of them)."""

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        """Newest alerts by event time."""

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def close(self) -> None: ...
