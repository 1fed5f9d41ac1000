"""An in-memory alert store that ships in the package: for unit tests, docs and dry runs."""

from __future__ import annotations

from collections.abc import Sequence

from fraudstream.services.stores.alerts.base import Alert
from fraudstream.services.stores.dead_letters import DeadLetter


class MemoryAlertStore:
    """Dicts keyed like the real stores, so idempotency behaves the same."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.letters: dict[str, DeadLetter] = {}

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        for alert in alerts:
            self.alerts[alert.transaction_id] = alert
        for letter in dead_letters:
            self.letters[letter.key()] = letter

    def count_alerts(self) -> int:
        return len(self.alerts)

    def count_dead_letters(self) -> int:
        return len(self.letters)

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        ordered = sorted(self.alerts.values(), key=lambda a: (a.timestamp_ms, a.transaction_id), reverse=True)
        return ordered[:limit]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return [self.letters[k] for k in sorted(self.letters)][:limit]

    def close(self) -> None:
        pass
