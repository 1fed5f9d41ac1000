"""An in-memory alert store that ships in the package: the reference semantics, for tests, docs and dry runs."""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Sequence

from fraudstream.services.stores.alerts.base import (
    ENTITIES,
    GROUPINGS,
    MAX_STATUSES,
    Alert,
    AlertNotFound,
    AlertQuery,
    EntityStat,
    LabelEvent,
    Page,
    RunnerStatus,
    check_label,
    check_search,
    decode_cursor,
    encode_cursor,
    sort_key,
)
from fraudstream.services.stores.dead_letters import DeadLetter

LABEL_FIELDS = ("label", "labelled_by", "labelled_at_ms", "label_note")


class MemoryAlertStore:
    """Dicts keyed like the real stores, so idempotency behaves the same."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.letters: dict[str, DeadLetter] = {}
        self.labels: dict[str, list[LabelEvent]] = {}
        self.statuses: dict[tuple[str, int], RunnerStatus] = {}

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        for alert in alerts:
            old = self.alerts.get(alert.transaction_id)
            if old is not None and old.label is not None:  # a replay never clears a review
                alert = dataclasses.replace(alert, **{f: getattr(old, f) for f in LABEL_FIELDS})
            self.alerts[alert.transaction_id] = alert
        for letter in dead_letters:
            self.letters[letter.key()] = letter

    def get(self, transaction_id: str) -> Alert | None:
        return self.alerts.get(transaction_id)

    def _matching(self, query: AlertQuery | None) -> list[Alert]:
        if query is None:
            return list(self.alerts.values())
        return [a for a in self.alerts.values() if query.matches(a)]

    def search(self, query: AlertQuery = AlertQuery(), sort: str = "time", limit: int = 50, cursor: str | None = None) -> Page:
        check_search(sort, limit)
        ordered = sorted(self._matching(query), key=lambda a: sort_key(a, sort), reverse=True)
        total = len(ordered)
        if cursor is not None:
            after = tuple(decode_cursor(cursor, sort))
            keys = [tuple(sort_key(a, sort)) for a in ordered]
            # ordered is descending: skip everything >= the cursor
            start = len(keys) - bisect.bisect_left(list(reversed(keys)), after)
            ordered = ordered[start:]
        page = ordered[:limit]
        more = len(ordered) > limit
        return Page(page, total, encode_cursor(page[-1], sort) if more and page else None)

    def count_alerts(self, query: AlertQuery | None = None) -> int:
        return len(self._matching(query))

    def set_label(self, transaction_id: str, label: str, analyst: str, at_ms: int, note: str = "") -> Alert:
        check_label(label)
        alert = self.alerts.get(transaction_id)
        if alert is None:
            raise AlertNotFound(transaction_id)
        self.labels.setdefault(transaction_id, []).append(LabelEvent(transaction_id, label, analyst, at_ms, note))
        alert = dataclasses.replace(alert, label=label, labelled_by=analyst, labelled_at_ms=at_ms, label_note=note)
        self.alerts[transaction_id] = alert
        return alert

    def label_history(self, transaction_id: str) -> list[LabelEvent]:
        return sorted(self.labels.get(transaction_id, []), key=lambda e: e.at_ms)

    def alerts_over_time(self, query: AlertQuery, interval_ms: int) -> list[tuple[int, int]]:
        counts = Counter(a.timestamp_ms // interval_ms * interval_ms for a in self._matching(query))
        return sorted(counts.items())

    def top_entities(self, entity: str, query: AlertQuery, by: str = "count", limit: int = 10) -> list[EntityStat]:
        if entity not in ENTITIES or by not in ("count", "amount"):
            raise ValueError(f"entity must be card or merchant and by count or amount, got {entity!r}, {by!r}")
        stats: dict[str, list[float]] = {}
        for a in self._matching(query):
            key = a.card_id if entity == "card" else a.merchant_id
            s = stats.setdefault(key, [0, 0.0])
            s[0] += 1
            s[1] += a.amount
        rows = [EntityStat(k, int(n), amt) for k, (n, amt) in stats.items()]
        rows.sort(key=lambda r: ((r.alerts, r.amount) if by == "count" else (r.amount, r.alerts), r.key), reverse=True)
        return rows[:limit]

    def histogram(self, field: str, query: AlertQuery, edges: Sequence[float]) -> list[int]:
        if field not in ("score", "amount") or len(edges) < 2:
            raise ValueError("histogram needs field score or amount and at least two edges")
        counts = [0] * (len(edges) - 1)
        for a in self._matching(query):
            value = a.score if field == "score" else a.amount
            if value == edges[-1]:
                counts[-1] += 1
            elif edges[0] <= value < edges[-1]:
                counts[bisect.bisect_right(edges, value) - 1] += 1
        return counts

    def count_by(self, field: str, query: AlertQuery) -> dict[str, int]:
        if field not in GROUPINGS:
            raise ValueError(f"field must be one of {', '.join(GROUPINGS)}, got {field!r}")
        if field == "hour":
            return dict(Counter(f"{a.hour:02d}" for a in self._matching(query)))
        return dict(Counter(str(a.field(field) or "unknown") for a in self._matching(query)))

    def count_dead_letters(self) -> int:
        return len(self.letters)

    def write_status(self, status: RunnerStatus) -> None:
        self.statuses[(status.runner, status.at_ms)] = status

    def runner_statuses(self, since_ms: int = 0) -> list[RunnerStatus]:
        found = sorted((s for s in self.statuses.values() if s.at_ms >= since_ms), key=lambda s: (s.at_ms, s.runner))
        return found[-MAX_STATUSES:]

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        return self.search(AlertQuery(), "time", limit).alerts if self.alerts and limit > 0 else []

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return [self.letters[k] for k in sorted(self.letters)][:limit]

    def close(self) -> None:
        pass
