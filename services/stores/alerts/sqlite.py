"""The embedded default alert store: one SQLite file, no server.

Alerts are keyed by transaction_id and dead letters by their source position, with upserts, so a
replay after a crash rewrites the same rows instead of adding new ones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from fraudstream.services.stores.alerts.base import Alert
from fraudstream.services.stores.dead_letters import DeadLetter

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    transaction_id TEXT PRIMARY KEY,
    timestamp_ms INTEGER NOT NULL,
    card_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    amount REAL NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    reasons TEXT NOT NULL,
    model_version TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (timestamp_ms);
CREATE INDEX IF NOT EXISTS alerts_card ON alerts (card_id, timestamp_ms);
CREATE INDEX IF NOT EXISTS alerts_merchant ON alerts (merchant_id, timestamp_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    position TEXT NOT NULL,
    field TEXT,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
"""


class SqliteAlertStore:
    """Alerts and dead letters in one SQLite database (WAL mode; one transaction per batch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        with self._db:
            if alerts:
                self._db.executemany(
                    "INSERT OR REPLACE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            a.transaction_id, a.timestamp_ms, a.card_id, a.merchant_id, a.amount, a.score,
                            a.threshold, json.dumps(list(a.reasons), ensure_ascii=False), a.model_version,
                            json.dumps(a.record, ensure_ascii=False, sort_keys=True),
                        )
                        for a in alerts
                    ],
                )
            if dead_letters:
                self._db.executemany(
                    "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?)",
                    [(d.key(), d.source, d.position, d.field, d.reason, d.raw) for d in dead_letters],
                )

    def count_alerts(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM alerts").fetchone()[0])

    def count_dead_letters(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        rows = self._db.execute(
            "SELECT * FROM alerts ORDER BY timestamp_ms DESC, transaction_id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_alert(row) for row in rows]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT source, position, field, reason, raw FROM dead_letters ORDER BY key LIMIT ?", (limit,)
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def close(self) -> None:
        self._db.close()


def _alert(row: tuple) -> Alert:
    (tid, ts, card, merchant, amount, score, threshold, reasons, version, record) = row
    return Alert(tid, ts, card, merchant, amount, score, threshold, tuple(json.loads(reasons)), version, json.loads(record))
