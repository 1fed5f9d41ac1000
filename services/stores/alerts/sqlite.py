"""The embedded default alert store: one SQLite file, no server.

Alerts are keyed by transaction_id and dead letters by their source position, with upserts, so a
replay after a crash rewrites the same rows instead of adding new ones — and never clears a label.
Labels are an append-only audit table plus the current label on the alert. Aggregations read roll-ups
that triggers keep exact (:mod:`fraudstream.services.stores.alerts.sqlite_rollups`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fraudstream.services.stores.alerts import sqlite_rollups as rollups
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
)
from fraudstream.services.stores.dead_letters import DeadLetter

T = TypeVar("T")

SCHEMA_VERSION = 4  # 3: roll-ups, runner heartbeats; 4: amount roll-ups, covering indexes for aggregations
UPGRADABLE = (2, 3)  # older schemas this version upgrades in place when it opens them
REBUILT_INDEXES = ("alerts_score", "alerts_amount", "alerts_card", "alerts_merchant")  # their columns changed in 4
# The score, amount, card and merchant indexes end with the time (and the amount): a count of a score range in
# a time range, or the top cards of a month, reads only the index.
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
    record TEXT NOT NULL,
    merchant_category TEXT,
    country TEXT,
    channel TEXT,
    hour INTEGER NOT NULL,
    label TEXT,
    labelled_by TEXT,
    labelled_at_ms INTEGER,
    label_note TEXT
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (timestamp_ms, transaction_id);
CREATE INDEX IF NOT EXISTS alerts_score ON alerts (score, transaction_id, timestamp_ms);
CREATE INDEX IF NOT EXISTS alerts_amount ON alerts (amount, transaction_id, timestamp_ms);
CREATE INDEX IF NOT EXISTS alerts_card ON alerts (card_id, timestamp_ms, amount);
CREATE INDEX IF NOT EXISTS alerts_merchant ON alerts (merchant_id, timestamp_ms, amount);
CREATE INDEX IF NOT EXISTS alerts_label ON alerts (label, score);
CREATE TABLE IF NOT EXISTS label_events (
    transaction_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    label TEXT NOT NULL,
    analyst TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS label_events_tx ON label_events (transaction_id, at_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    position TEXT NOT NULL,
    field TEXT,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runner_status (
    runner TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    read INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    dead_letters INTEGER NOT NULL,
    rows_per_s REAL NOT NULL,
    lag INTEGER,
    finished INTEGER NOT NULL,
    PRIMARY KEY (runner, at_ms)
);
CREATE INDEX IF NOT EXISTS runner_status_time ON runner_status (at_ms);
"""
ALERT_COLUMNS = (
    "transaction_id, timestamp_ms, card_id, merchant_id, amount, score, threshold, reasons, model_version, "
    "record, label, labelled_by, labelled_at_ms, label_note"
)
UPSERT = """
INSERT INTO alerts (transaction_id, timestamp_ms, card_id, merchant_id, amount, score, threshold, reasons,
                    model_version, record, merchant_category, country, channel, hour)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (transaction_id) DO UPDATE SET
    timestamp_ms=excluded.timestamp_ms, card_id=excluded.card_id, merchant_id=excluded.merchant_id,
    amount=excluded.amount, score=excluded.score, threshold=excluded.threshold, reasons=excluded.reasons,
    model_version=excluded.model_version, record=excluded.record,
    merchant_category=excluded.merchant_category, country=excluded.country, channel=excluded.channel,
    hour=excluded.hour
"""
SORT_COLUMNS = {"time": "timestamp_ms", "score": "score", "amount": "amount"}


def _serialised(method: Callable[..., T]) -> Callable[..., T]:
    """Run the method under the store's lock: the dashboard shares one store (one connection) across sessions,
    and sqlite3 transactions on one connection must not interleave between threads."""

    @functools.wraps(method)
    def locked(self: SqliteAlertStore, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class SqliteAlertStore:
    """Alerts, labels and dead letters in one SQLite database (WAL mode; one transaction per batch)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._enable_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA temp_store=MEMORY")  # writes fire triggers, so each has a statement journal: not on disk
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes and roll-ups a batch touches stay cached
        self._create_or_check_schema()

    def _enable_wal(self, patience_s: float = 30.0) -> None:
        """Switch to WAL, retrying: SQLite answers "locked" at once here, without its busy timeout, when
        another process is creating the same new file."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    self._db.close()
                    raise
                time.sleep(0.01)

    def _create_or_check_schema(self) -> None:
        """Check the version and create the tables in one write transaction, so two processes opening a
        new store at the same moment cannot see each other's half-made schema."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE name='alerts'").fetchone()[0]
            upgrading = tables and version in UPGRADABLE
            if tables and version != SCHEMA_VERSION and not upgrading:
                raise ValueError(
                    f"{self.path} was made by another fraudstream version (schema {version}, this one needs "
                    f"{SCHEMA_VERSION}); use another store path or delete it"
                )
            for index in REBUILT_INDEXES if upgrading else ():
                self._db.execute(f"DROP INDEX IF EXISTS {index}")
            for statement in (*SCHEMA.split(";"), *rollups.STATEMENTS):
                if statement.strip():
                    self._db.execute(statement)
            if upgrading:
                rollups.rebuild(self._db)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._db.close()
            raise

    # ------------------------------------------------------------------ writes

    @_serialised
    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        with self._db:
            if alerts:
                self._db.executemany(
                    UPSERT,
                    [
                        (
                            a.transaction_id, a.timestamp_ms, a.card_id, a.merchant_id, a.amount, a.score,
                            a.threshold, json.dumps(list(a.reasons), ensure_ascii=False), a.model_version,
                            json.dumps(a.record, ensure_ascii=False, sort_keys=True),
                            a.field("merchant_category"), a.field("country"), a.field("channel"), a.hour,
                        )
                        for a in alerts
                    ],
                )
            if dead_letters:
                self._db.executemany(
                    "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?)",
                    [(d.key(), d.source, d.position, d.field, d.reason, d.raw) for d in dead_letters],
                )
            rollups.fold(self._db)

    @_serialised
    def set_label(self, transaction_id: str, label: str, analyst: str, at_ms: int, note: str = "") -> Alert:
        check_label(label)
        with self._db:
            updated = self._db.execute(
                "UPDATE alerts SET label=?, labelled_by=?, labelled_at_ms=?, label_note=? WHERE transaction_id=?",
                (label, analyst, at_ms, note, transaction_id),
            ).rowcount
            if not updated:
                raise AlertNotFound(transaction_id)
            self._db.execute(
                "INSERT INTO label_events VALUES (?,?,?,?,?)", (transaction_id, at_ms, label, analyst, note)
            )
            rollups.fold(self._db)
        alert = self.get(transaction_id)
        assert alert is not None
        return alert

    # ------------------------------------------------------------------ reads

    def _folded(self) -> sqlite3.Connection:
        """The connection, once changes written to ``alerts`` behind the store's back are in the roll-ups."""
        if rollups.pending(self._db):
            with self._db:
                rollups.fold(self._db)
        return self._db

    @_serialised
    def get(self, transaction_id: str) -> Alert | None:
        row = self._db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE transaction_id=?", (transaction_id,)).fetchone()
        return _alert(row) if row else None

    @_serialised
    def search(self, query: AlertQuery = AlertQuery(), sort: str = "time", limit: int = 50, cursor: str | None = None) -> Page:
        check_search(sort, limit)
        total = rollups.count_alerts(self._folded(), query)
        where, params = rollups.where(query)
        column = SORT_COLUMNS[sort]
        if cursor is not None:
            value, tid = decode_cursor(cursor, sort)
            where += f" AND ({column}, transaction_id) < (?, ?)"
            params = [*params, value, tid]
        rows = self._db.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {where} ORDER BY {column} DESC, transaction_id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        alerts = [_alert(r) for r in rows[:limit]]
        return Page(alerts, total, encode_cursor(alerts[-1], sort) if len(rows) > limit else None)

    @_serialised
    def count_alerts(self, query: AlertQuery | None = None) -> int:
        return rollups.count_alerts(self._folded(), query or AlertQuery())

    @_serialised
    def label_history(self, transaction_id: str) -> list[LabelEvent]:
        rows = self._db.execute(
            "SELECT transaction_id, label, analyst, at_ms, note FROM label_events WHERE transaction_id=? "
            "ORDER BY at_ms, rowid",
            (transaction_id,),
        ).fetchall()
        return [LabelEvent(*row) for row in rows]

    @_serialised
    def alerts_over_time(self, query: AlertQuery, interval_ms: int) -> list[tuple[int, int]]:
        return rollups.alerts_over_time(self._folded(), query, interval_ms)

    @_serialised
    def top_entities(self, entity: str, query: AlertQuery, by: str = "count", limit: int = 10) -> list[EntityStat]:
        if entity not in ENTITIES or by not in ("count", "amount"):
            raise ValueError(f"entity must be card or merchant and by count or amount, got {entity!r}, {by!r}")
        return rollups.top_entities(self._folded(), entity, query, by, limit)

    @_serialised
    def histogram(self, field: str, query: AlertQuery, edges: Sequence[float]) -> list[int]:
        if field not in ("score", "amount") or len(edges) < 2:
            raise ValueError("histogram needs field score or amount and at least two edges")
        return rollups.histogram(self._folded(), field, query, edges)

    @_serialised
    def count_by(self, field: str, query: AlertQuery) -> dict[str, int]:
        if field not in GROUPINGS:
            raise ValueError(f"field must be one of {', '.join(GROUPINGS)}, got {field!r}")
        return rollups.count_by(self._folded(), field, query)

    @_serialised
    def write_status(self, status: RunnerStatus) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO runner_status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             dataclasses.astuple(status))

    @_serialised
    def runner_statuses(self, since_ms: int = 0) -> list[RunnerStatus]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT * FROM runner_status WHERE at_ms >= ? ORDER BY at_ms DESC, runner DESC LIMIT ?) "
            "ORDER BY at_ms, runner", (since_ms, MAX_STATUSES)).fetchall()
        return [RunnerStatus(*row[:9], finished=bool(row[9])) for row in rows]

    @_serialised
    def count_dead_letters(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    @_serialised
    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        return self.search(AlertQuery(), "time", limit).alerts if limit > 0 else []

    @_serialised
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT source, position, field, reason, raw FROM dead_letters ORDER BY key LIMIT ?", (limit,)
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    @_serialised
    def close(self) -> None:
        self._db.close()


def _alert(row: tuple) -> Alert:
    (tid, ts, card, merchant, amount, score, threshold, reasons, version, record, label, by, at, note) = row
    return Alert(
        tid, ts, card, merchant, amount, score, threshold, tuple(json.loads(reasons)), version, json.loads(record),
        label, by, at, note,
    )

