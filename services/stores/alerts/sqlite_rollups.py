"""The SQLite alert store's aggregations, answered from roll-ups kept exact by triggers.

Scanning a million alerts for every dashboard chart takes 0.2-2 s, so the store keeps summaries:
alerts per hour and label; per hour, label and category / country / channel; per day and per hour,
label and 1/200 score bin; per card and merchant (count and amount). Triggers on ``alerts`` log every
change (a new row +1, a gone row -1: an insert, a delete, a replacing upsert, a relabel), and the
store folds the log into the summaries at the end of each write, in the same transaction: one
set-based upsert per summary per batch costs far less than eight upserts per alert in the triggers.
A change made behind the store's back waits in the log and is folded before the next read.

A query filtered by at most a time range and a label is answered from the full days / hours the
roll-ups hold plus the raw alerts of the partial hours at its two edges. Top cards / merchants and
histograms the roll-ups cannot answer start from all-time totals and subtract the alerts outside the
query, when those are fewer than the ones inside. Anything else runs plain SQL over ``alerts``.
Every plan gives exactly the answer of :meth:`AlertQuery.matches`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from fraudstream.services.stores.alerts.base import HOUR_MS, LABELS, UNLABELLED, AlertQuery, EntityStat

SCORE_GRID = 200  # score bins of 1/200: histogram edges k/200 (steps of 0.005, 0.01, 0.025, 0.05, ...) align
GROUP_FIELDS = ("merchant_category", "country", "channel")
ENTITY_COLUMNS = {"card": "card_id", "merchant": "merchant_id"}
TIME_INDEX = "alerts INDEXED BY alerts_time"
DAY_MS = 24 * HOUR_MS
LOG = "rollup_log"
LOGGED = ("timestamp_ms", "label", "score", "merchant_category", "country", "channel", "card_id", "merchant_id", "amount")

TABLES = (  # period_ms: the start of the hour (or day) the row counts
    """CREATE TABLE IF NOT EXISTS rollup_hours (
    period_ms INTEGER NOT NULL, label TEXT NOT NULL, alerts INTEGER NOT NULL,
    PRIMARY KEY (period_ms, label)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rollup_groups (
    field TEXT NOT NULL, period_ms INTEGER NOT NULL, label TEXT NOT NULL, value TEXT NOT NULL, alerts INTEGER NOT NULL,
    PRIMARY KEY (field, period_ms, label, value)) WITHOUT ROWID""",
    *(
        f"""CREATE TABLE IF NOT EXISTS {table} (
    period_ms INTEGER NOT NULL, label TEXT NOT NULL, bin INTEGER NOT NULL, alerts INTEGER NOT NULL,
    PRIMARY KEY (period_ms, label, bin)) WITHOUT ROWID"""
        for table in ("rollup_score_days", "rollup_score_hours")
    ),
    """CREATE TABLE IF NOT EXISTS entity_totals (
    entity TEXT NOT NULL, key TEXT NOT NULL, alerts INTEGER NOT NULL, amount REAL NOT NULL,
    PRIMARY KEY (entity, key)) WITHOUT ROWID""",
    f"CREATE TABLE IF NOT EXISTS {LOG} ({', '.join(LOGGED)}, sign INTEGER NOT NULL)",
)


def floor_to(value: str, step: int) -> str:
    """SQL rounding ``value`` down to a multiple of ``step`` (a floor, like Python's ``//``, for negatives too)."""
    return f"({value} - (({value} % {step}) + {step}) % {step})"


def score_bin(score: str) -> str:
    """SQL for the score bin of ``score``: 2k when it equals k/GRID, 2k+1 strictly between k/GRID and (k+1)/GRID.

    Keeping the grid points in bins of their own makes a histogram with edges on the grid exact whatever
    the float rounding; scores below 0 or above 1 get bins -1 and 2*GRID+1 that no aligned edge covers.
    """
    k = f"CAST({score} * {SCORE_GRID} AS INTEGER)"  # the true k, or one off when the product rounded
    low, high = f"{k} / {SCORE_GRID}.0", f"({k} + 1) / {SCORE_GRID}.0"
    return (
        f"CASE WHEN {score} < 0 THEN -1 WHEN {score} > 1 THEN {2 * SCORE_GRID + 1} ELSE 2 * {k} + CASE "
        f"WHEN {score} < {low} THEN -1 WHEN {score} = {low} THEN 0 WHEN {score} < {high} THEN 1 "
        f"WHEN {score} = {high} THEN 2 ELSE 3 END END"
    )


@dataclass(frozen=True)
class Rollup:
    """One row of a summary table per alert: its key columns as SQL over the alert ``{r}``."""

    table: str
    keys: dict[str, str]
    amount: bool = False  # also sum the alerts' amount

    def fold(self) -> str:
        """An upsert adding the logged changes (+1 for a new row, -1 for a gone one) to the summary rows."""
        columns = [*self.keys, "alerts"] + (["amount"] if self.amount else [])
        values = [e.format(r=LOG) for e in self.keys.values()] + ["sum(sign)"] + (["sum(sign * amount)"] if self.amount else [])
        changed = "sum(sign) != 0" + (" OR sum(sign * amount) != 0" if self.amount else "")
        sums = ", ".join(f"{c} = {c} + excluded.{c}" for c in columns[len(self.keys):])
        return (
            f"INSERT INTO {self.table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {LOG} WHERE true "
            f"GROUP BY {', '.join(str(i + 1) for i in range(len(self.keys)))} HAVING {changed} "
            f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {sums}"
        )


LABEL_KEY = "coalesce({r}.label, '')"
HOUR_KEYS = {"period_ms": floor_to("{r}.timestamp_ms", HOUR_MS), "label": LABEL_KEY}
DAY_KEYS = {"period_ms": floor_to("{r}.timestamp_ms", DAY_MS), "label": LABEL_KEY}
ROLLUPS = (
    Rollup("rollup_hours", HOUR_KEYS),
    *(Rollup("rollup_groups", {"field": f"'{f}'", **HOUR_KEYS, "value": f"coalesce({{r}}.{f}, 'unknown')"}) for f in GROUP_FIELDS),
    Rollup("rollup_score_days", {**DAY_KEYS, "bin": score_bin("{r}.score")}),
    Rollup("rollup_score_hours", {**HOUR_KEYS, "bin": score_bin("{r}.score")}),
    *(Rollup("entity_totals", {"entity": f"'{e}'", "key": f"{{r}}.{c}"}, amount=True) for e, c in ENTITY_COLUMNS.items()),
)
FOLDS = (*(rollup.fold() for rollup in ROLLUPS), f"DELETE FROM {LOG}")


def _log(row: str, sign: int) -> str:
    return f"INSERT INTO {LOG} VALUES ({', '.join(f'{row}.{c}' for c in LOGGED)}, {sign});"


TRIGGERS = (  # every change to a logged column of an alert, as rows to subtract (-1) and add (+1)
    f"CREATE TRIGGER IF NOT EXISTS alerts_log_insert AFTER INSERT ON alerts BEGIN {_log('new', 1)} END",
    f"CREATE TRIGGER IF NOT EXISTS alerts_log_delete AFTER DELETE ON alerts BEGIN {_log('old', -1)} END",
    f"CREATE TRIGGER IF NOT EXISTS alerts_log_update AFTER UPDATE OF {', '.join(LOGGED)} ON alerts "
    f"WHEN {' OR '.join(f'old.{c} IS NOT new.{c}' for c in LOGGED)} BEGIN {_log('old', -1)} {_log('new', 1)} END",
)
STATEMENTS = (*TABLES, *TRIGGERS)


def pending(db: sqlite3.Connection) -> bool:
    """Whether changes to ``alerts`` wait in the log (only after a write that did not go through the store)."""
    return bool(db.execute(f"SELECT EXISTS (SELECT 1 FROM {LOG})").fetchone()[0])


def backfill(db: sqlite3.Connection) -> None:
    """Count every alert already stored (a store made before the roll-ups existed), inside the caller's transaction."""
    columns = ", ".join(LOGGED)
    db.execute(f"INSERT INTO {LOG} ({columns}, sign) SELECT {columns}, 1 FROM alerts")
    fold(db)


def fold(db: sqlite3.Connection) -> None:
    """Add the logged changes to the roll-ups and empty the log (inside the caller's write transaction)."""
    for statement in FOLDS:
        db.execute(statement)



# ---------------------------------------------------------------------------------------------- plans


def where(query: AlertQuery) -> tuple[str, list]:
    """SQL for :meth:`AlertQuery.matches`, with parameters (never string-built values)."""
    clauses, params = ["1=1"], []
    for column, value, op in (
        ("card_id", query.card_id, "="),
        ("merchant_id", query.merchant_id, "="),
        ("score", query.min_score, ">="),
        ("score", query.max_score, "<="),
        ("amount", query.min_amount, ">="),
        ("amount", query.max_amount, "<="),
        ("timestamp_ms", query.start_ms, ">="),
        ("timestamp_ms", query.end_ms, "<"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    if query.label is not None:
        if query.label == UNLABELLED:
            clauses.append("label IS NULL")
        else:
            clauses.append("label = ?")
            params.append(query.label)
    for word in query.words():
        clauses.append("instr(lower(reasons), ?) > 0")
        params.append(word)
    return " AND ".join(clauses), params


def time_and_label_only(query: AlertQuery) -> bool:
    """Whether the query filters on nothing but time and label, the dimensions the roll-ups keep."""
    others = (query.card_id, query.merchant_id, query.min_score, query.max_score, query.min_amount, query.max_amount)
    return all(v is None for v in others) and not query.words()


@dataclass(frozen=True)
class Span:
    """Summary rows a plan reads: full periods of ``grain`` ms in [start, end) (None: open), one label or all."""

    grain: int
    start: int | None = None
    end: int | None = None
    label: str | None = None

    def sql(self) -> tuple[str, list]:
        clauses, params = ["1=1"], []
        if self.start is not None:
            clauses.append("period_ms >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("period_ms < ?")
            params.append(self.end)
        if self.label is not None:
            clauses.append("label = ?")
            params.append("" if self.label == UNLABELLED else self.label)
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class Plan:
    """Where an answer comes from: summary rows, plus (+1) or minus (-1) pieces of ``alerts``, plus the
    all-time totals when ``totals``."""

    spans: tuple[Span, ...]
    pieces: tuple[tuple[AlertQuery, int], ...]
    totals: bool = False

    @staticmethod
    def raw(query: AlertQuery) -> Plan:
        return Plan((), ((query, 1),))


def rollup_plan(query: AlertQuery, grains: tuple[int, ...] = (HOUR_MS,)) -> Plan:
    """Full periods from roll-ups kept at ``grains`` (coarsest first), the partial hours at the edges from ``alerts``."""
    if not time_and_label_only(query):
        return Plan.raw(query)
    spans, gaps = _cover(query.start_ms, query.end_ms, grains)
    return Plan(
        tuple(Span(grain, first, stop, query.label) for grain, first, stop in spans),
        tuple((AlertQuery(start_ms=first, end_ms=stop, label=query.label), 1) for first, stop in gaps),
    )


Bound = int | None  # a time in ms, None for open


def _cover(start: Bound, end: Bound, grains: tuple[int, ...]) -> tuple[list[tuple[int, Bound, Bound]], list[tuple[Bound, Bound]]]:
    """Split [start, end) into full periods of the first grain and, recursively, the finer grains for the rest:
    ``(grain, first, stop)`` spans and the ``(first, stop)`` gaps no grain fills."""
    if not grains:
        return [], [(start, end)]
    grain = grains[0]
    first = None if start is None else -(-start // grain) * grain
    stop = None if end is None else end // grain * grain
    if first is not None and stop is not None and first >= stop:  # not one full period inside
        return _cover(start, end, grains[1:])
    spans, gaps = [(grain, first, stop)], []
    for lo, hi in ((start, first), (stop, end)):
        if lo is not None and hi is not None and lo < hi:
            more_spans, more_gaps = _cover(lo, hi, grains[1:])
            spans += more_spans
            gaps += more_gaps
    return spans, gaps


def totals_plan(db: sqlite3.Connection, query: AlertQuery) -> Plan:
    """All-time totals minus the alerts outside the query, when those are fewer than the ones inside."""
    if not time_and_label_only(query) or query.label in LABELS:
        return Plan.raw(query)  # a specific label: its alerts are few, read them
    inside, everything = count_alerts(db, query), count_alerts(db, AlertQuery())
    if inside <= everything - inside:  # also every empty range, whose outside pieces would overlap
        return Plan.raw(query)
    start, end = query.start_ms, query.end_ms
    outside = [AlertQuery(end_ms=start)] if start is not None else []
    if end is not None:
        outside.append(AlertQuery(start_ms=end))
    if query.label == UNLABELLED:
        outside += [AlertQuery(start_ms=start, end_ms=end, label=label) for label in LABELS]
    return Plan((), tuple((piece, -1) for piece in outside), totals=True)


def _source(piece: AlertQuery) -> str:
    """The table to read a raw piece from: through the time index when the piece is a time range.

    Without statistics SQLite would rather walk the label index for ``label IS NULL`` (nearly every alert).
    """
    timed = piece.start_ms is not None or piece.end_ms is not None
    return TIME_INDEX if timed and time_and_label_only(piece) and piece.label not in LABELS else "alerts"


def _union(plan: Plan, raw: str, summaries: Mapping[int, str] = MappingProxyType({}), totals: str = "",
           totals_head: Sequence = (), raw_head: Sequence = ()) -> tuple[str, list]:
    """The plan as one UNION ALL (one statement, so one consistent snapshot) with its parameters.

    ``summaries`` read the summary rows of each grain (``{span}`` is their condition), ``totals`` the all-time
    totals, ``raw`` one piece of ``alerts`` (``{source}``, ``{where}``, ``{sign}``); the heads are the
    parameters a query uses before its condition.
    """
    arms, params = [], []
    if plan.totals:
        arms.append(totals)
        params += totals_head
    for span in plan.spans:
        condition, values = span.sql()
        arms.append(summaries[span.grain].format(span=condition))
        params += values
    for piece, sign in plan.pieces:
        condition, values = where(piece)
        arms.append(raw.format(source=_source(piece), where=condition, sign=sign))
        params += [*raw_head, *values]
    return " UNION ALL ".join(arms), params


# ---------------------------------------------------------------------------------------------- aggregations


def count_alerts(db: sqlite3.Connection, query: AlertQuery) -> int:
    """Alerts matching ``query``."""
    union, params = _union(
        rollup_plan(query),
        "SELECT {sign} * count(*) AS n FROM {source} WHERE {where}",
        {HOUR_MS: "SELECT sum(alerts) AS n FROM rollup_hours WHERE {span}"},
    )
    return int(db.execute(f"SELECT coalesce(sum(n), 0) FROM ({union})", params).fetchone()[0])


def alerts_over_time(db: sqlite3.Connection, query: AlertQuery, interval_ms: int) -> list[tuple[int, int]]:
    """``(bucket start, alerts)`` per non-empty bucket; from the roll-ups when buckets are whole hours."""
    interval = int(interval_ms)
    hourly = interval > 0 and interval % HOUR_MS == 0
    union, params = _union(
        rollup_plan(query) if hourly else Plan.raw(query),
        f"SELECT {floor_to('timestamp_ms', interval)} AS k, {{sign}} * count(*) AS n FROM {{source}} WHERE {{where}} GROUP BY k",
        {HOUR_MS: f"SELECT {floor_to('period_ms', interval)} AS k, sum(alerts) AS n FROM rollup_hours WHERE {{span}} GROUP BY k"},
    )
    rows = db.execute(f"SELECT k, sum(n) FROM ({union}) GROUP BY k HAVING sum(n) > 0 ORDER BY k", params).fetchall()
    return [(int(k), int(n)) for k, n in rows]


def count_by(db: sqlite3.Connection, field: str, query: AlertQuery) -> dict[str, int]:
    """Alerts per value of ``field`` (one of GROUPINGS, checked by the caller); missing values are "unknown"."""
    if field == "hour":
        summary = f"SELECT printf('%02d', ((period_ms / {HOUR_MS}) % 24 + 24) % 24) AS k, sum(alerts) AS n FROM rollup_hours WHERE {{span}} GROUP BY k"
        value = "printf('%02d', hour)"
    else:
        summary = f"SELECT value AS k, sum(alerts) AS n FROM rollup_groups WHERE field = '{field}' AND {{span}} GROUP BY k"
        value = f"coalesce({field}, 'unknown')"
    raw = f"SELECT {value} AS k, {{sign}} * count(*) AS n FROM {{source}} WHERE {{where}} GROUP BY k"
    union, params = _union(rollup_plan(query), raw, {HOUR_MS: summary})
    rows = db.execute(f"SELECT k, sum(n) FROM ({union}) GROUP BY k HAVING sum(n) > 0", params).fetchall()
    return {str(k): int(n) for k, n in rows}


def histogram(db: sqlite3.Connection, field: str, query: AlertQuery, edges: Sequence[float]) -> list[int]:
    """Alerts per bin ``[edges[i], edges[i+1])``, the last bin closed: from the score roll-ups when the edges
    lie on their grid, else from index counts less the alerts outside the query, else from ``alerts``."""
    bins = len(edges) - 1
    cases = " ".join(f"WHEN {field} >= ? AND {field} {'<=' if i == bins - 1 else '<'} ? THEN {i}" for i in range(bins))
    bounds = [v for i in range(bins) for v in (edges[i], edges[i + 1])]
    raw = f"SELECT CASE {cases} END AS b, {{sign}} * count(*) AS n FROM {{source}} WHERE {{where}} GROUP BY b"
    grid = _on_score_grid(edges) if field == "score" else None
    if grid is not None:
        summaries = {DAY_MS: _score_bins_sql(grid, "rollup_score_days"), HOUR_MS: _score_bins_sql(grid, "rollup_score_hours")}
        union, params = _union(rollup_plan(query, (DAY_MS, HOUR_MS)), raw, summaries, raw_head=bounds)
    elif _increasing(edges):
        union, params = _union(totals_plan(db, query), raw, totals=_index_counts_sql(field, bins), totals_head=bounds, raw_head=bounds)
    else:
        union, params = _union(Plan.raw(query), raw, raw_head=bounds)
    counts = [0] * bins
    for b, n in db.execute(f"SELECT b, sum(n) FROM ({union}) GROUP BY b", params):
        if b is not None:  # outside every bin (a filter here would be pushed down and evaluate the CASE twice)
            counts[int(b)] = int(n)
    return counts


def _on_score_grid(edges: Sequence[float]) -> list[int] | None:
    """The grid points k (edge = k/GRID exactly) of strictly increasing edges in [0, 1], or None."""
    if not all(isinstance(e, (int, float)) and math.isfinite(e) for e in edges):
        return None
    points = [round(e * SCORE_GRID) for e in edges]
    on_grid = all(0 <= k <= SCORE_GRID and k / SCORE_GRID == e for k, e in zip(points, edges))
    return points if on_grid and _increasing(points) else None


def _increasing(values: Sequence[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def _score_bins_sql(grid: list[int], table: str) -> str:
    """Histogram bins from a score roll-up: bin i holds score bins [2*k_i, 2*k_(i+1)), the last one closed."""
    last = len(grid) - 2
    cases = " ".join(
        f"WHEN bin >= {2 * grid[i]} AND bin {'<=' if i == last else '<'} {2 * grid[i + 1]} THEN {i}" for i in range(last + 1)
    )
    return f"SELECT CASE {cases} END AS b, n FROM (SELECT bin, sum(alerts) AS n FROM {table} WHERE {{span}} GROUP BY bin)"


def _index_counts_sql(field: str, bins: int) -> str:
    """All-time bin counts, each a range count on the field's index."""
    return " UNION ALL ".join(
        f"SELECT {i} AS b, count(*) AS n FROM alerts WHERE {field} >= ? AND {field} {'<=' if i == bins - 1 else '<'} ?"
        for i in range(bins)
    )


def top_entities(db: sqlite3.Connection, entity: str, query: AlertQuery, by: str, limit: int) -> list[EntityStat]:
    """The ``limit`` cards or merchants with most alerts or alerted amount: from the totals table less the
    alerts outside the query when those are fewer, else by grouping the matching alerts."""
    order = "n DESC, amt DESC, key DESC" if by == "count" else "amt DESC, n DESC, key DESC"
    raw = f"SELECT {ENTITY_COLUMNS[entity]} AS key, count(*) AS n, sum(amount) AS amt FROM {{source}} WHERE {{where}} GROUP BY key"
    plan = totals_plan(db, query)
    if not plan.totals:
        union, params = _union(plan, raw)
        sql = f"{union} ORDER BY {order} LIMIT ?"
    else:
        sql, params = _totals_less(raw, plan.pieces, entity, order)
    rows = db.execute(sql, [*params, limit]).fetchall()
    return [EntityStat(k, int(n), float(amt)) for k, n, amt in rows]


def _totals_less(raw: str, pieces: tuple[tuple[AlertQuery, int], ...], entity: str, order: str) -> tuple[str, list]:
    """Every key's totals less what its alerts in ``pieces`` add up to, in ``order`` (then a LIMIT parameter)."""
    union, params = _union(Plan((), pieces), raw)
    outside = union or "SELECT NULL AS key, 0 AS n, 0.0 AS amt WHERE 0"
    sql = (
        f"WITH outside AS (SELECT key AS o_key, sum(n) AS o_n, sum(amt) AS o_amt FROM ({outside}) GROUP BY key) "
        "SELECT key, alerts - coalesce(o_n, 0) AS n, amount - coalesce(o_amt, 0.0) AS amt "
        "FROM entity_totals LEFT JOIN outside ON o_key = key WHERE entity = ? AND alerts - coalesce(o_n, 0) > 0 "
        f"ORDER BY {order} LIMIT ?"
    )
    return sql, [*params, entity]
