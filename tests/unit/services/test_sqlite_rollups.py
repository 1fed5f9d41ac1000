"""The SQLite store's roll-ups: after any mix of inserts, replacing upserts, relabels and deletes, every
aggregation equals the in-memory reference, for time ranges with edges anywhere in an hour."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.services.stores.alerts import sqlite_rollups as rollups
from fraudstream.services.stores.alerts.base import GROUPINGS, LABELS, UNLABELLED, Alert, AlertQuery
from fraudstream.services.stores.alerts.memory import MemoryAlertStore
from fraudstream.services.stores.alerts.sqlite import SCHEMA_VERSION, SqliteAlertStore

from support import HOUR, T0

SPAN = 6 * HOUR
GRID_EDGES = [i / 20 for i in range(21)]  # the dashboard's score edges, on the roll-up grid
OFF_GRID_EDGES = [0.55 + k * 0.025 for k in range(19)]  # 0.55 + 0.025 is not 0.575: not on the grid
AMOUNT_EDGES = [0, 10, 25, 50, 100]

grid_scores = st.integers(0, 200).map(lambda k: k / 200)
scores = st.one_of(
    grid_scores,
    grid_scores.map(lambda s: math.nextafter(s, -1)),  # a hair below a grid point
    grid_scores.map(lambda s: math.nextafter(s, 2)),
    st.floats(0, 1),
    st.sampled_from([-0.25, 1.5]),
)
times = st.one_of(
    st.integers(0, SPAN),
    st.integers(0, SPAN // HOUR).map(lambda h: h * HOUR),  # on an hour boundary
    st.integers(1, SPAN // HOUR).map(lambda h: h * HOUR - 1),
).map(lambda offset: T0 + offset)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    """An alert from a small pool of ids (so writes replace each other), cards, merchants and groups."""
    tid = f"t{draw(st.integers(0, 11))}"
    record = {"transaction_id": tid}
    for field, values in (("merchant_category", ["grocery", "travel"]), ("country", ["US", "FR"]), ("channel", ["online"])):
        value = draw(st.sampled_from([*values, None]))
        if value is not None:
            record[field] = value
    return Alert(
        tid, draw(times), draw(st.sampled_from(["c1", "c2", "c3"])), draw(st.sampled_from(["m1", "m2"])),
        draw(st.integers(1, 400)) / 4, draw(scores), 0.5, (draw(st.sampled_from(["far away", "card testing"])),),
        "v1", record,
    )


operations = st.one_of(
    st.tuples(st.just("write"), st.lists(alerts(), min_size=1, max_size=6)),
    st.tuples(st.just("label"), st.integers(0, 11), st.sampled_from(LABELS)),
    st.tuples(st.just("delete"), st.integers(0, 11)),
)
bounds = st.one_of(st.none(), times, st.integers(-HOUR, SPAN + HOUR).map(lambda offset: T0 + offset))
queries = st.builds(
    AlertQuery,
    start_ms=bounds,
    end_ms=bounds,
    label=st.sampled_from([None, UNLABELLED, *LABELS]),
    card_id=st.sampled_from([None, None, None, "c1"]),  # now and then a filter the roll-ups cannot answer
    min_score=st.sampled_from([None, None, None, 0.5]),
)


def apply(ops: list[tuple], sqlite_store: SqliteAlertStore, memory: MemoryAlertStore) -> None:
    """The same writes, relabels and deletes on both stores (deletes straight in SQL, as a retention job would)."""
    for op in ops:
        if op[0] == "write":
            sqlite_store.write(op[1])
            memory.write(op[1])
        elif op[0] == "label" and memory.get(f"t{op[1]}") is not None:
            sqlite_store.set_label(f"t{op[1]}", op[2], "ana", T0)
            memory.set_label(f"t{op[1]}", op[2], "ana", T0)
        elif op[0] == "delete":
            with sqlite_store._db:
                sqlite_store._db.execute("DELETE FROM alerts WHERE transaction_id = ?", (f"t{op[1]}",))
            memory.alerts.pop(f"t{op[1]}", None)


def answers(store: SqliteAlertStore | MemoryAlertStore, query: AlertQuery) -> dict:
    """Every aggregation the dashboard makes, for one query."""
    out: dict = {"count": store.count_alerts(query)}
    for interval in (HOUR, 2 * HOUR, HOUR // 2):
        out[f"over_time_{interval}"] = store.alerts_over_time(query, interval)
    for field in GROUPINGS:
        out[f"by_{field}"] = store.count_by(field, query)
    for name, field, edges in (("grid", "score", GRID_EDGES), ("off_grid", "score", OFF_GRID_EDGES), ("amount", "amount", AMOUNT_EDGES)):
        out[f"histogram_{name}"] = store.histogram(field, query, edges)
    for entity in ("card", "merchant"):
        for by in ("count", "amount"):
            out[f"top_{entity}_{by}"] = [(s.key, s.alerts, s.amount) for s in store.top_entities(entity, query, by, 2)]
    return out


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteAlertStore(tmp_path / "alerts.db")
    yield opened
    opened.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=12), asked=st.lists(queries, min_size=1, max_size=6))
def test_aggregations_equal_the_reference_after_any_writes(store: SqliteAlertStore, ops: list[tuple], asked: list[AlertQuery]) -> None:
    with store._db:
        store._db.execute("DELETE FROM alerts")  # one store for all examples: start empty (the triggers empty the roll-ups)
    memory = MemoryAlertStore()
    apply(ops, store, memory)
    for query in [AlertQuery(), *asked]:
        assert answers(store, query) == answers(memory, query), query


def raw_rollups(db: sqlite3.Connection) -> dict[str, set]:
    """What each roll-up table must hold, computed from ``alerts`` (rows that went back to zero do not count)."""
    hour, day, label = rollups.floor_to("timestamp_ms", HOUR), rollups.floor_to("timestamp_ms", rollups.DAY_MS), "coalesce(label, '')"
    groups = " UNION ALL ".join(
        f"SELECT '{f}', {hour}, {label}, coalesce({f}, 'unknown'), count(*) FROM alerts GROUP BY 1, 2, 3, 4" for f in rollups.GROUP_FIELDS
    )
    entities = " UNION ALL ".join(
        f"SELECT '{e}', {c}, count(*), sum(amount) FROM alerts GROUP BY {c}" for e, c in rollups.ENTITY_COLUMNS.items()
    )
    score_bins = "SELECT {period}, " + label + ", " + rollups.score_bin("score") + ", count(*) FROM alerts GROUP BY 1, 2, 3"
    return {
        "rollup_hours": set(db.execute(f"SELECT {hour}, {label}, count(*) FROM alerts GROUP BY 1, 2")),
        "rollup_groups": set(db.execute(groups)),
        "rollup_score_days": set(db.execute(score_bins.format(period=day))),
        "rollup_score_hours": set(db.execute(score_bins.format(period=hour))),
        "entity_totals": set(db.execute(entities)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=12))
def test_rollup_tables_equal_the_raw_alerts(store: SqliteAlertStore, ops: list[tuple]) -> None:
    with store._db:
        store._db.execute("DELETE FROM alerts")
    apply(ops, store, MemoryAlertStore())
    store._folded()  # a delete behind the store's back waits in the log until the next read
    for table, expected in raw_rollups(store._db).items():
        stored = set(store._db.execute(f"SELECT * FROM {table} WHERE alerts != 0"))
        assert stored == expected, table


def test_a_replay_or_a_relabel_to_the_same_label_leaves_the_rollups_alone(store: SqliteAlertStore) -> None:
    alert = Alert("t1", T0 + 5, "c1", "m1", 10.0, 0.7, 0.5, ("far away",), "v1", {"transaction_id": "t1"})
    store.write([alert])
    store.set_label("t1", "fraud", "ana", T0)
    before = {table: store._db.execute(f"SELECT * FROM {table}").fetchall() for table in raw_rollups(store._db)}
    store._db.execute("CREATE TEMP TRIGGER no_rollup_writes BEFORE UPDATE ON rollup_hours BEGIN SELECT RAISE(ABORT, 'touched'); END")
    store.write([alert])
    store.set_label("t1", "fraud", "bob", T0 + 1)
    assert {table: store._db.execute(f"SELECT * FROM {table}").fetchall() for table in before} == before


def python_score_bin(score: float) -> int:
    """The reference for :func:`rollups.score_bin`: 2k on the grid point k/200, 2k+1 between k/200 and (k+1)/200."""
    if score < 0:
        return -1
    if score > 1:
        return 2 * rollups.SCORE_GRID + 1
    k = max(k for k in range(rollups.SCORE_GRID + 1) if k / rollups.SCORE_GRID <= score)
    return 2 * k + (score != k / rollups.SCORE_GRID)


@given(score=scores)
def test_score_bins_put_grid_points_in_bins_of_their_own(score: float) -> None:
    db = sqlite3.connect(":memory:")
    assert db.execute(f"SELECT {rollups.score_bin(':score')}", {"score": score}).fetchone()[0] == python_score_bin(score)


@pytest.mark.parametrize(("edges", "grid"), [
    (GRID_EDGES, list(range(0, 201, 10))),
    ([0, 0.5, 1], [0, 100, 200]),
    (OFF_GRID_EDGES, None),
    ([0.5, 0.25], None),  # not increasing
    ([0, 2], None),  # outside [0, 1]
    ([0, math.inf], None),
])
def test_which_edges_the_score_rollup_answers(edges: list[float], grid: list[int] | None) -> None:
    assert rollups._on_score_grid(edges) == grid


DAY = rollups.DAY_MS


@pytest.mark.parametrize(("query", "grains", "spans", "gaps"), [
    (AlertQuery(), (HOUR,), [(HOUR, None, None)], []),
    (AlertQuery(start_ms=T0 + 30, end_ms=T0 + 3 * HOUR + 7, label="fraud"), (HOUR,), [(HOUR, T0 + HOUR, T0 + 3 * HOUR)],
     [(T0 + 30, T0 + HOUR), (T0 + 3 * HOUR, T0 + 3 * HOUR + 7)]),
    (AlertQuery(start_ms=T0, end_ms=T0 + 2 * HOUR), (HOUR,), [(HOUR, T0, T0 + 2 * HOUR)], []),
    (AlertQuery(start_ms=T0 + 1, end_ms=T0 + 2 * HOUR - 1), (HOUR,), [], [(T0 + 1, T0 + 2 * HOUR - 1)]),
    (AlertQuery(start_ms=T0 + 2 * HOUR + 5, end_ms=T0 + 3 * DAY + HOUR), (DAY, HOUR),
     [(DAY, T0 + DAY, T0 + 3 * DAY), (HOUR, T0 + 3 * HOUR, T0 + DAY), (HOUR, T0 + 3 * DAY, T0 + 3 * DAY + HOUR)],
     [(T0 + 2 * HOUR + 5, T0 + 3 * HOUR)]),
    (AlertQuery(end_ms=T0 + DAY + 90), (DAY, HOUR), [(DAY, None, T0 + DAY)], [(T0 + DAY, T0 + DAY + 90)]),
    (AlertQuery(start_ms=T0 + 5, end_ms=T0 + 20 * HOUR), (DAY, HOUR), [(HOUR, T0 + HOUR, T0 + 20 * HOUR)], [(T0 + 5, T0 + HOUR)]),
])
def test_rollup_plans_read_full_periods_from_the_rollups_and_edges_from_the_alerts(
        query: AlertQuery, grains: tuple[int, ...], spans: list, gaps: list) -> None:
    assert rollups.rollup_plan(query, grains) == rollups.Plan(
        tuple(rollups.Span(grain, first, stop, query.label) for grain, first, stop in spans),
        tuple((AlertQuery(start_ms=first, end_ms=stop, label=query.label), 1) for first, stop in gaps),
    )


def test_queries_with_other_filters_read_the_alerts() -> None:
    query = AlertQuery(card_id="c1", start_ms=T0, end_ms=T0 + 5 * HOUR)
    assert rollups.rollup_plan(query) == rollups.Plan.raw(query)


def test_totals_plans_subtract_the_alerts_outside_only_when_they_are_fewer(store: SqliteAlertStore) -> None:
    store.write([Alert(f"t{i}", T0 + i * HOUR, "c1", "m1", 1.0, 0.7, 0.5, (), "v1", {}) for i in range(10)])
    wide = AlertQuery(start_ms=T0 + HOUR, end_ms=T0 + 9 * HOUR, label=UNLABELLED)
    outside = [AlertQuery(end_ms=T0 + HOUR), AlertQuery(start_ms=T0 + 9 * HOUR),
               *(AlertQuery(start_ms=T0 + HOUR, end_ms=T0 + 9 * HOUR, label=label) for label in LABELS)]
    assert rollups.totals_plan(store._db, wide) == rollups.Plan((), tuple((q, -1) for q in outside), totals=True)
    narrow = AlertQuery(start_ms=T0 + HOUR, end_ms=T0 + 4 * HOUR)
    assert rollups.totals_plan(store._db, narrow) == rollups.Plan.raw(narrow)


def test_a_store_made_by_the_previous_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alerts (transaction_id TEXT PRIMARY KEY)")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION - 1}")
    with pytest.raises(ValueError, match=f"schema {SCHEMA_VERSION - 1}, this one needs {SCHEMA_VERSION}"):
        SqliteAlertStore(path)
