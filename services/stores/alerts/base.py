"""The alert-store interface every backend implements, and the alert record it stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fraudstream.services.stores.dead_letters import DeadLetter


@dataclass(frozen=True)
class Alert:
    """A flagged transaction: the canonical record plus the model's verdict."""

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


class AlertStore(Protocol):
    """Idempotent by transaction_id: writing the same alert twice leaves one."""

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        """Store a batch atomically: all of it or none of it."""

    def count_alerts(self) -> int: ...

    def count_dead_letters(self) -> int: ...

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        """Newest alerts by event time."""

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def close(self) -> None: ...
