"""The SQLite store's roll-ups: after any mix of inserts, replacing upserts, relabels and deletes, every
aggregation equals the in-memory reference, for time ranges with edges anywhere in an hour."""

from __future__ import annotations

import bisect
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
AMOUNT_EDGES = [0, 10, 25, 50, 100]  # on the amount roll-ups' grid
OFF_GRID_AMOUNT_EDGES = [0, 7.5, 30, 100]

grid_scores = st.integers(0, 200).map(lambda k: k / 200)
scores = st.one_of(
    grid_scores,
    grid_scores.map(lambda s: math.nextafter(s, -1)),  # a hair below a grid point
    grid_scores.map(lambda s: math.nextafter(s, 2)),
    st.floats(0, 1),
    st.sampled_from([-0.25, 1.5]),
)
grid_amounts = st.sampled_from(rollups.AMOUNT_POINTS[:12])  # 0 .. 250
# Quarters (grid points included) add up exactly, so amount totals can be compared exactly whatever the order of
# the additions; amounts a hair off the grid points only in the test of the counts.
amounts = st.one_of(grid_amounts, st.integers(1, 400).map(lambda quarters: quarters / 4))
off_grid_amounts = st.one_of(grid_amounts.map(lambda a: math.nextafter(a, -1)), grid_amounts.map(lambda a: math.nextafter(a, math.inf)))
times = st.one_of(
    st.integers(0, SPAN),
    st.integers(0, SPAN // HOUR).map(lambda h: h * HOUR),  # on an hour boundary
    st.integers(1, SPAN // HOUR).map(lambda h: h * HOUR - 1),
).map(lambda offset: T0 + offset)


@st.composite
def alerts(draw: st.DrawFn, amounts: st.SearchStrategy[float] = amounts) -> Alert:
    """An alert from a small pool of ids (so writes replace each other), cards, merchants and groups."""
    tid = f"t{draw(st.integers(0, 11))}"
    record = {"transaction_id": tid}
    for field, values in (("merchant_category", ["grocery", "travel"]), ("country", ["US", "FR"]), ("channel", ["online"])):
        value = draw(st.sampled_from([*values, None]))
        if value is not None:
            record[field] = value
    return Alert(
        tid, draw(times), draw(st.sampled_from(["c1", "c2", "c3"])), draw(st.sampled_from(["m1", "m2"])),
        draw(amounts), draw(scores), 0.5, (draw(st.sampled_from(["far away", "card testing"])),),
        "v1", record,
    )


def operations(amounts: st.SearchStrategy[float] = amounts) -> st.SearchStrategy[tuple]:
    """Writes of alerts with these amounts, relabels and deletes."""
    return st.one_of(
        st.tuples(st.just("write"), st.lists(alerts(amounts), min_size=1, max_size=6)),
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


def answers(store: SqliteAlertStore | MemoryAlertStore, query: AlertQuery, entities: bool = True) -> dict:
    """Every aggregation the dashboard makes, for one query (top cards and merchants only if ``entities``)."""
    out: dict = {"count": store.count_alerts(query)}
    for interval in (HOUR, 2 * HOUR, HOUR // 2):
        out[f"over_time_{interval}"] = store.alerts_over_time(query, interval)
    for field in GROUPINGS:
        out[f"by_{field}"] = store.count_by(field, query)
    for name, field, edges in (("grid", "score", GRID_EDGES), ("off_grid", "score", OFF_GRID_EDGES),
                               ("amount", "amount", AMOUNT_EDGES), ("off_grid_amount", "amount", OFF_GRID_AMOUNT_EDGES)):
        out[f"histogram_{name}"] = store.histogram(field, query, edges)
    for entity in ("card", "merchant") if entities else ():
        for by in ("count", "amount"):
            out[f"top_{entity}_{by}"] = [(s.key, s.alerts, s.amount) for s in store.top_entities(entity, query, by, 2)]
    return out


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteAlertStore(tmp_path / "alerts.db")
    yield opened
    opened.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations(), min_size=1, max_size=12), asked=st.lists(queries, min_size=1, max_size=6))
def test_aggregations_equal_the_reference_after_any_writes(store: SqliteAlertStore, ops: list[tuple], asked: list[AlertQuery]) -> None:
    with store._db:
        store._db.execute("DELETE FROM alerts")  # one store for all examples: start empty (the triggers empty the roll-ups)
    memory = MemoryAlertStore()
    apply(ops, store, memory)
    for query in [AlertQuery(), *asked]:
        assert answers(store, query) == answers(memory, query), query


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations(st.one_of(amounts, off_grid_amounts)), min_size=1, max_size=12), asked=st.lists(queries, max_size=4))
def test_counts_equal_the_reference_for_amounts_a_hair_off_the_bin_edges(
        store: SqliteAlertStore, ops: list[tuple], asked: list[AlertQuery]) -> None:
    """Their sums are not exact (they depend on the order of the additions), so no top lists here."""
    with store._db:
        store._db.execute("DELETE FROM alerts")
    memory = MemoryAlertStore()
    apply(ops, store, memory)
    for query in [AlertQuery(), *asked]:
        assert answers(store, query, entities=False) == answers(memory, query, entities=False), query


def raw_rollups(db: sqlite3.Connection) -> dict[str, set]:
    """What each roll-up table must hold, computed from ``alerts`` (rows that went back to zero do not count)."""
    hour, day, label = rollups.floor_to("timestamp_ms", HOUR), rollups.floor_to("timestamp_ms", rollups.DAY_MS), "coalesce(label, '')"
    groups = " UNION ALL ".join(
        f"SELECT '{f}', {hour}, {label}, coalesce({f}, 'unknown'), count(*) FROM alerts GROUP BY 1, 2, 3, 4" for f in rollups.GROUP_FIELDS
    )
    entities = " UNION ALL ".join(
        f"SELECT '{e}', {c}, count(*), sum(amount) FROM alerts GROUP BY {c}" for e, c in rollups.ENTITY_COLUMNS.items()
    )
    bins = {
        table: set(db.execute(f"SELECT {period}, {label}, {grid.bin(grid.field)}, count(*) FROM alerts GROUP BY 1, 2, 3"))
        for grid in rollups.GRIDS.values()
        for period, table in zip((day, hour), grid.tables().values())
    }
    return {
        "rollup_hours": set(db.execute(f"SELECT {hour}, {label}, count(*) FROM alerts GROUP BY 1, 2")),
        "rollup_groups": set(db.execute(groups)),
        **bins,
        "entity_totals": set(db.execute(entities)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations(), min_size=1, max_size=12))
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


def python_bin(value: float, points: tuple[float, ...]) -> int:
    """The reference for the bin SQL: 2j on point j, 2j+1 strictly between points j and j+1 (or above the last)."""
    j = bisect.bisect_right(points, value) - 1
    if j < 0:
        return -1
    return 2 * j + (value != points[j])


def sql_bin(expression: str, value: float) -> int:
    return sqlite3.connect(":memory:").execute(f"SELECT {expression}", {"v": value}).fetchone()[0]


@given(score=scores)
def test_score_bins_put_grid_points_in_bins_of_their_own(score: float) -> None:
    expected = python_bin(score, rollups.SCORE_POINTS) if score <= 1 else 2 * rollups.SCORE_STEPS + 1
    assert sql_bin(rollups.score_bin(":v"), score) == expected


@given(amount=st.one_of(amounts, st.sampled_from(rollups.AMOUNT_POINTS), st.floats(-10, 1e13, allow_nan=False)))
def test_amount_bins_put_grid_points_in_bins_of_their_own(amount: float) -> None:
    assert sql_bin(rollups.amount_bin(":v"), amount) == python_bin(amount, rollups.AMOUNT_POINTS)


@pytest.mark.parametrize(("field", "edges", "positions"), [
    ("score", GRID_EDGES, list(range(0, 201, 10))),
    ("score", [0, 0.5, 1], [0, 100, 200]),
    ("score", OFF_GRID_EDGES, None),
    ("score", [0.5, 0.25], None),  # not increasing
    ("score", [0, 2], None),  # outside [0, 1]
    ("score", [0, math.nan], None),
    ("amount", [0, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 1e9], [0, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 37]),
    ("amount", OFF_GRID_AMOUNT_EDGES, None),
])
def test_which_edges_the_rollups_answer(field: str, edges: list[float], positions: list[int] | None) -> None:
    assert rollups.GRIDS[field].positions(edges) == positions


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


def test_the_alerts_outside_a_query_are_disjoint_pieces() -> None:
    query = AlertQuery(start_ms=T0 + HOUR, end_ms=T0 + 9 * HOUR, label=UNLABELLED)
    assert rollups.outside(query) == tuple((piece, -1) for piece in [
        AlertQuery(end_ms=T0 + HOUR), AlertQuery(start_ms=T0 + 9 * HOUR),
        *(AlertQuery(start_ms=T0 + HOUR, end_ms=T0 + 9 * HOUR, label=label) for label in LABELS)])


@pytest.mark.parametrize(("query", "plan"), [
    (AlertQuery(start_ms=T0 + 95 * HOUR), "raw"),  # the last 5 of 100 hours: read them
    (AlertQuery(end_ms=T0 + 95 * HOUR), "totals"),  # all but the last 5: subtract them from the totals
    (AlertQuery(start_ms=T0 + 20 * HOUR, end_ms=T0 + 60 * HOUR), "index"),  # the middle: one pass over the index
    (AlertQuery(start_ms=T0 + 20 * HOUR, end_ms=T0 + 60 * HOUR, label=UNLABELLED), "raw"),  # the index has no label
    (AlertQuery(end_ms=T0 + 95 * HOUR, label=UNLABELLED), "totals"),
    (AlertQuery(label="fraud"), "raw"),
    (AlertQuery(card_id="c1"), "raw"),
])
def test_top_entities_take_the_plan_that_reads_least(store: SqliteAlertStore, query: AlertQuery, plan: str) -> None:
    store.write([Alert(f"t{i}", T0 + i * HOUR, "c1", "m1", 1.0, 0.7, 0.5, (), "v1", {}) for i in range(100)])
    assert rollups._entity_plan(store._db, query) == plan


def test_an_unlabelled_histogram_off_the_grid_counts_the_index_less_the_labelled_alerts(store: SqliteAlertStore) -> None:
    written = [Alert(f"t{i}", T0 + i * HOUR, "c1", "m1", 5.0 + i, 0.6 + i / 100, 0.5, (), "v1", {}) for i in range(8)]
    reference = MemoryAlertStore()
    for target in (store, reference):
        target.write(written)
        target.set_label("t1", "fraud", "ana", T0)
        target.set_label("t6", "legitimate", "ana", T0)
    query = AlertQuery(start_ms=T0 + 1, end_ms=T0 + 7 * HOUR, label=UNLABELLED)
    assert rollups._index_is_cheaper(store._db, query)
    for field, edges in (("amount", OFF_GRID_AMOUNT_EDGES), ("score", OFF_GRID_EDGES)):
        assert store.histogram(field, query, edges) == reference.histogram(field, query, edges)


def test_a_schema_3_store_is_upgraded_with_its_new_rollups_filled(tmp_path: Path) -> None:
    """Schema 3 had no amount roll-ups and narrower indexes: opening it rebuilds both, and every roll-up."""
    path = tmp_path / "v3.db"
    store = SqliteAlertStore(path)
    written = [Alert(f"t{i}", T0 + i * HOUR // 3, f"c{i % 3}", "m1", 5.0 * i, 0.6, 0.5, (), "v1", {}) for i in range(30)]
    store.write(written)
    store.close()
    with sqlite3.connect(path) as db:
        for table in ("rollup_amount_days", "rollup_amount_hours"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP INDEX alerts_card")
        db.execute("CREATE INDEX alerts_card ON alerts (card_id, timestamp_ms)")
        db.execute("PRAGMA user_version=3")
    upgraded = SqliteAlertStore(path)
    try:
        assert upgraded._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[2] for row in upgraded._db.execute("PRAGMA index_info(alerts_card)")]
        assert columns == ["card_id", "timestamp_ms", "amount"]
        for table, expected in raw_rollups(upgraded._db).items():
            assert set(upgraded._db.execute(f"SELECT * FROM {table} WHERE alerts != 0")) == expected, table
        reference = MemoryAlertStore()
        reference.write(written)
        assert answers(upgraded, AlertQuery(start_ms=T0 + 5, end_ms=T0 + 7 * HOUR)) == answers(reference, AlertQuery(start_ms=T0 + 5, end_ms=T0 + 7 * HOUR))
    finally:
        upgraded.close()
