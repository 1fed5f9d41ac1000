"""The SQLite alert store's aggregations, answered from roll-ups kept exact by triggers.

Scanning a million alerts for every dashboard chart takes 0.2-2 s, so the store keeps summaries:
alerts per hour and label; per hour, label and category / country / channel; per day and per hour,
label and score bin (1/200 steps) or amount bin (1, 2, 2.5, 5 x 10^k); per card and merchant (count
and amount). Triggers on ``alerts`` log every change (a new row +1, a gone row -1: an insert, a
delete, a replacing upsert, a relabel), and the store folds the log into the summaries at the end of
each write, in the same transaction: one set-based upsert per summary per batch costs far less than
eight upserts per alert in the triggers. A change made behind the store's back waits in the log and
is folded before the next read.

A query filtered by at most a time range and a label is answered from the full days / hours the
roll-ups hold plus the raw alerts of the partial hours at its two edges (histograms when their edges
lie on a bin grid). Top cards / merchants, and histograms with other edges, take the cheapest exact
plan: the matching alerts through the time index, all-time totals less the alerts outside the query,
or one pass over a covering index. Anything else runs plain SQL over ``alerts``. Every plan gives
exactly the answer of :meth:`AlertQuery.matches`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from fraudstream.services.stores.alerts.base import HOUR_MS, LABELS, UNLABELLED, AlertQuery, EntityStat

DAY_MS = 24 * HOUR_MS
GROUP_FIELDS = ("merchant_category", "country", "channel")
ENTITY_COLUMNS = {"card": "card_id", "merchant": "merchant_id"}
TIME_INDEX = "alerts INDEXED BY alerts_time"
LOG = "rollup_log"
LOGGED = ("timestamp_ms", "label", "score", "merchant_category", "country", "channel", "card_id", "merchant_id", "amount")
# Costs relative to reading one alert through the time index, measured at a million alerts, for choosing a
# plan: passing one entry of a covering index, counting one that matches, and scanning the per-card /
# per-merchant totals (as a share of all alerts).
INDEX_ENTRY, INDEX_MATCH, TOTALS_SHARE = 1 / 20, 1 / 10, 1 / 20


def floor_to(value: str, step: int) -> str:
    """SQL rounding ``value`` down to a multiple of ``step`` (a floor, like Python's ``//``, for negatives too)."""
    return f"({value} - (({value} % {step}) + {step}) % {step})"


# ---------------------------------------------------------------------------------------------- bin grids


SCORE_STEPS = 200
SCORE_POINTS = tuple(k / SCORE_STEPS for k in range(SCORE_STEPS + 1))  # 0, 0.005, ..., 1
AMOUNT_POINTS = (0.0, *(m * 10.0**k for k in range(12) for m in (1, 2, 2.5, 5)))  # 0, 1, 2, 2.5, 5, 10, ..., 5e11


def score_bin(score: str) -> str:
    """SQL for the bin of ``score`` on SCORE_POINTS: 2k when it equals point k, 2k+1 strictly between points k and k+1.

    Computed, not searched: k/200 in SQL is the same double as in Python. Scores below 0 get -1, above 1 get 401.
    """
    k = f"CAST({score} * {SCORE_STEPS} AS INTEGER)"  # the true k, or one off when the product rounded
    low, high = f"{k} / {SCORE_STEPS}.0", f"({k} + 1) / {SCORE_STEPS}.0"
    return (
        f"CASE WHEN {score} < 0 THEN -1 WHEN {score} > 1 THEN {2 * SCORE_STEPS + 1} ELSE 2 * {k} + CASE "
        f"WHEN {score} < {low} THEN -1 WHEN {score} = {low} THEN 0 WHEN {score} < {high} THEN 1 "
        f"WHEN {score} = {high} THEN 2 ELSE 3 END END"
    )


def amount_bin(amount: str) -> str:
    """SQL for the bin of ``amount`` on AMOUNT_POINTS (2j on point j, 2j+1 above it), a binary search of CASEs.

    The points are integers or 2.5, written exactly in SQL; amounts below 0 get -1.
    """
    def search(lo: int, hi: int) -> str:  # amount is in [point lo, point hi)
        if hi - lo == 1:
            return f"CASE WHEN {amount} = {AMOUNT_POINTS[lo]!r} THEN {2 * lo} ELSE {2 * lo + 1} END"
        mid = (lo + hi) // 2
        return f"CASE WHEN {amount} < {AMOUNT_POINTS[mid]!r} THEN {search(lo, mid)} ELSE {search(mid, hi)} END"

    return f"CASE WHEN {amount} < 0 THEN -1 ELSE {search(0, len(AMOUNT_POINTS))} END"


@dataclass(frozen=True)
class Grid:
    """Histogram edges on these points are answered from the field's roll-ups (days and hours)."""

    field: str
    points: tuple[float, ...]
    bin: Callable[[str], str]

    def tables(self) -> dict[int, str]:
        return {DAY_MS: f"rollup_{self.field}_days", HOUR_MS: f"rollup_{self.field}_hours"}

    def positions(self, edges: Sequence[float]) -> list[int] | None:
        """The point index of each edge, or None unless every edge is a point and they increase."""
        index = {point: j for j, point in enumerate(self.points)}
        positions = [index.get(edge) for edge in edges]
        if None in positions or not _increasing(positions):
            return None
        return positions


GRIDS = {"score": Grid("score", SCORE_POINTS, score_bin), "amount": Grid("amount", AMOUNT_POINTS, amount_bin)}


# ---------------------------------------------------------------------------------------------- tables and triggers


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
        for grid in GRIDS.values()
        for table in grid.tables().values()
    ),
    """CREATE TABLE IF NOT EXISTS entity_totals (
    entity TEXT NOT NULL, key TEXT NOT NULL, alerts INTEGER NOT NULL, amount REAL NOT NULL,
    PRIMARY KEY (entity, key)) WITHOUT ROWID""",
    f"CREATE TABLE IF NOT EXISTS {LOG} ({', '.join(LOGGED)}, sign INTEGER NOT NULL)",
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
PERIOD_KEYS = {grain: {"period_ms": floor_to("{r}.timestamp_ms", grain), "label": LABEL_KEY} for grain in (DAY_MS, HOUR_MS)}
ROLLUPS = (
    Rollup("rollup_hours", PERIOD_KEYS[HOUR_MS]),
    *(Rollup("rollup_groups", {"field": f"'{f}'", **PERIOD_KEYS[HOUR_MS], "value": f"coalesce({{r}}.{f}, 'unknown')"}) for f in GROUP_FIELDS),
    *(
        Rollup(table, {**PERIOD_KEYS[grain], "bin": grid.bin(f"{{r}}.{grid.field}")})
        for grid in GRIDS.values()
        for grain, table in grid.tables().items()
    ),
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


def fold(db: sqlite3.Connection) -> None:
    """Add the logged changes to the roll-ups and empty the log (inside the caller's write transaction)."""
    for statement in FOLDS:
        db.execute(statement)


def rebuild(db: sqlite3.Connection) -> None:
    """Recount every roll-up from the stored alerts (a store from an older schema), inside the caller's transaction."""
    for table in dict.fromkeys(rollup.table for rollup in ROLLUPS):
        db.execute(f"DELETE FROM {table}")
    columns = ", ".join(LOGGED)
    db.execute(f"INSERT INTO {LOG} ({columns}, sign) SELECT {columns}, 1 FROM alerts")
    fold(db)


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


Piece = tuple[AlertQuery, int]  # alerts matching the query, added (+1) or subtracted (-1)


@dataclass(frozen=True)
class Plan:
    """Where an answer comes from: summary rows plus or minus pieces of ``alerts``."""

    spans: tuple[Span, ...]
    pieces: tuple[Piece, ...]

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


def outside(query: AlertQuery) -> tuple[Piece, ...]:
    """Disjoint pieces that, subtracted from all alerts, leave those matching a time-and-unlabelled query."""
    start, end = query.start_ms, query.end_ms
    pieces = [AlertQuery(end_ms=start)] if start is not None else []
    if end is not None:
        pieces.append(AlertQuery(start_ms=end))
    if query.label == UNLABELLED:
        pieces += [AlertQuery(start_ms=start, end_ms=end, label=label) for label in LABELS]
    return tuple((piece, -1) for piece in pieces)


def labelled_inside(query: AlertQuery) -> tuple[Piece, ...]:
    """Pieces that, subtracted from the alerts of the query's time range, leave its unlabelled ones."""
    if query.label != UNLABELLED:
        return ()
    return tuple((AlertQuery(start_ms=query.start_ms, end_ms=query.end_ms, label=label), -1) for label in LABELS)


def _source(piece: AlertQuery) -> str:
    """The table to read a raw piece from: through the time index when the piece is a time range.

    Without statistics SQLite would rather walk the label index for ``label IS NULL`` (nearly every alert).
    """
    timed = piece.start_ms is not None or piece.end_ms is not None
    return TIME_INDEX if timed and time_and_label_only(piece) and piece.label not in LABELS else "alerts"


def _union(plan: Plan, raw: str, summaries: Mapping[int, str] = MappingProxyType({}), raw_head: Sequence = ()) -> tuple[str, list]:
    """The plan as one UNION ALL (one statement, so one consistent snapshot) with its parameters.

    ``summaries`` read the summary rows of each grain (``{span}`` is their condition), ``raw`` one piece of
    ``alerts`` (``{source}``, ``{where}``, ``{sign}``); ``raw_head`` are the parameters ``raw`` uses first.
    """
    arms, params = [], []
    for span in plan.spans:
        condition, values = span.sql()
        arms.append(summaries[span.grain].format(span=condition))
        params += values
    for piece, sign in plan.pieces:
        condition, values = where(piece)
        arms.append(raw.format(source=_source(piece), where=condition, sign=sign))
        params += [*raw_head, *values]
    return " UNION ALL ".join(arms), params


def _sizes(db: sqlite3.Connection, query: AlertQuery) -> tuple[int, int]:
    """``(alerts matching, all alerts)``, both from the roll-ups, to choose a plan."""
    return count_alerts(db, query), count_alerts(db, AlertQuery())


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
    """Alerts per bin ``[edges[i], edges[i+1])``, the last bin closed: from the field's roll-ups when the edges
    lie on its grid, else from range counts on the field's covering index or from the matching alerts."""
    bins = len(edges) - 1
    cases = " ".join(f"WHEN {field} >= ? AND {field} {'<=' if i == bins - 1 else '<'} ? THEN {i}" for i in range(bins))
    bounds = [v for i in range(bins) for v in (edges[i], edges[i + 1])]
    raw = f"SELECT CASE {cases} END AS b, {{sign}} * count(*) AS n FROM {{source}} WHERE {{where}} GROUP BY b"
    grid = GRIDS[field]
    positions = grid.positions(edges)
    if positions is not None:
        summaries = {grain: _grid_bins_sql(positions, table) for grain, table in grid.tables().items()}
        union, params = _union(rollup_plan(query, (DAY_MS, HOUR_MS)), raw, summaries, bounds)
    elif _increasing(edges) and time_and_label_only(query) and query.label not in LABELS and _index_is_cheaper(db, query):
        union, params = _index_counts(field, edges, query)
        more, more_params = _union(Plan((), labelled_inside(query)), raw, raw_head=bounds)
        union, params = (f"{union} UNION ALL {more}", params + more_params) if more else (union, params)
    else:
        union, params = _union(Plan.raw(query), raw, raw_head=bounds)
    counts = [0] * bins
    for b, n in db.execute(f"SELECT b, sum(n) FROM ({union}) GROUP BY b", params):
        if b is not None:  # outside every bin (a filter here would be pushed down and evaluate the CASE twice)
            counts[int(b)] = int(n)
    return counts


def _increasing(values: Sequence[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def _grid_bins_sql(positions: list[int], table: str) -> str:
    """Histogram bins from a bin-grid roll-up: bin i holds grid bins [2*p_i, 2*p_(i+1)), the last one closed."""
    last = len(positions) - 2
    cases = " ".join(
        f"WHEN bin >= {2 * positions[i]} AND bin {'<=' if i == last else '<'} {2 * positions[i + 1]} THEN {i}" for i in range(last + 1)
    )
    return f"SELECT CASE {cases} END AS b, n FROM (SELECT bin, sum(alerts) AS n FROM {table} WHERE {{span}} GROUP BY bin)"


def _index_is_cheaper(db: sqlite3.Connection, query: AlertQuery) -> bool:
    """Whether one pass over a covering index costs less than reading the query's alerts through the time index."""
    inside, everything = _sizes(db, query)
    return _index_cost(inside, everything) < inside


def _index_cost(inside: int, everything: int) -> float:
    return everything * INDEX_ENTRY + inside * INDEX_MATCH


def _index_counts(field: str, edges: Sequence[float], query: AlertQuery) -> tuple[str, list]:
    """Bin counts of the query's time range (any label), each a range count on the field's covering index."""
    condition, values = where(AlertQuery(start_ms=query.start_ms, end_ms=query.end_ms))
    bins = len(edges) - 1
    arms = [
        f"SELECT {i} AS b, count(*) AS n FROM alerts INDEXED BY alerts_{field} "
        f"WHERE {field} >= ? AND {field} {'<=' if i == bins - 1 else '<'} ? AND {condition}"
        for i in range(bins)
    ]
    return " UNION ALL ".join(arms), [v for i in range(bins) for v in (edges[i], edges[i + 1], *values)]


def top_entities(db: sqlite3.Connection, entity: str, query: AlertQuery, by: str, limit: int) -> list[EntityStat]:
    """The ``limit`` cards or merchants with most alerts or alerted amount, by the cheapest exact plan: grouping
    the matching alerts, the totals table less the alerts outside the query, or one pass over the entity's index."""
    order = "n DESC, amt DESC, key DESC" if by == "count" else "amt DESC, n DESC, key DESC"
    column = ENTITY_COLUMNS[entity]
    raw = f"SELECT {column} AS key, count(*) AS n, sum(amount) AS amt FROM {{source}} WHERE {{where}} GROUP BY key"
    plan = _entity_plan(db, query)
    if plan == "totals":
        sql, params = _totals_less(raw, outside(query), entity, order)
    elif plan == "index":
        condition, params = where(query)
        sql = f"{raw.format(source=f'alerts INDEXED BY alerts_{entity}', where=condition)} ORDER BY {order} LIMIT ?"
    else:
        union, params = _union(Plan.raw(query), raw)
        sql = f"{union} ORDER BY {order} LIMIT ?"
    rows = db.execute(sql, [*params, limit]).fetchall()
    return [EntityStat(k, int(n), float(amt)) for k, n, amt in rows]


def _entity_plan(db: sqlite3.Connection, query: AlertQuery) -> str:
    """"raw", "totals" or "index", whichever reads least (a specific label's alerts are few: raw)."""
    if not time_and_label_only(query) or query.label in LABELS:
        return "raw"
    inside, everything = _sizes(db, query)
    costs = {"raw": inside, "totals": everything - inside + everything * TOTALS_SHARE}
    if query.label is None:  # the index has time and amount, not the label
        costs["index"] = _index_cost(inside, everything)
    return min(costs, key=costs.__getitem__)


def _totals_less(raw: str, pieces: tuple[Piece, ...], entity: str, order: str) -> tuple[str, list]:
    """Every key's totals less what its alerts in ``pieces`` add up to, in ``order`` (then a LIMIT parameter)."""
    union, params = _union(Plan((), pieces), raw)
    subtracted = union or "SELECT NULL AS key, 0 AS n, 0.0 AS amt WHERE 0"
    sql = (
        f"WITH outside AS (SELECT key AS o_key, sum(n) AS o_n, sum(amt) AS o_amt FROM ({subtracted}) GROUP BY key) "
        "SELECT key, alerts - coalesce(o_n, 0) AS n, amount - coalesce(o_amt, 0.0) AS amt "
        "FROM entity_totals LEFT JOIN outside ON o_key = key WHERE entity = ? AND alerts - coalesce(o_n, 0) > 0 "
        f"ORDER BY {order} LIMIT ?"
    )
    return sql, [*params, entity]
