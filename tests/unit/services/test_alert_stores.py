"""The alert-store contract, run on every backend in the registry; store URLs; checkpoint files."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from fraudstream.services.runners.checkpoint import CHECKPOINT_FORMAT, Checkpoint, CheckpointFile, CheckpointMismatch
from fraudstream.services.stores.alerts.base import Alert, AlertQuery, AlertStore
from fraudstream.services.stores.alerts.memory import MemoryAlertStore
from fraudstream.services.stores.alerts.registry import BACKENDS, open_store
from fraudstream.services.stores.alerts.sqlite import SCHEMA_VERSION, SqliteAlertStore
from fraudstream.services.stores.dead_letters import MAX_RAW_BYTES, DeadLetter

from support import HOUR, T0

# How the contract suite opens each backend; a new backend must add a line here (the test below insists).
URLS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: f"sqlite://{tmp / 'alerts.db'}",
    "memory": lambda tmp: "memory://",
}


def alert(n: int, t_ms: int = T0, **fields: object) -> Alert:
    values: dict = {
        "transaction_id": f"t{n}",
        "timestamp_ms": t_ms,
        "card_id": f"card-{n % 3}",
        "merchant_id": "m-1",
        "amount": 12.5 + n,
        "score": 0.7 + n / 1000,
        "threshold": 0.6,
        "reasons": ("amount 9.1× this card's median", "new merchant for this card"),
        "model_version": "iforest-test-1",
        "record": {"transaction_id": f"t{n}", "amount": 12.5 + n, "scenario": "card_testing"},
    }
    values.update(fields)
    return Alert(**values)


def test_every_registered_backend_is_in_the_contract_suite() -> None:
    contract = (Path(__file__).parents[2] / "contract" / "conftest.py").read_text()
    assert all(f'"{scheme}":' in contract for scheme in BACKENDS)
    assert set(URLS) <= set(BACKENDS)


@pytest.fixture(params=sorted(URLS))  # the embedded backends; the search engines run in tests/contract
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    opened = open_store(URLS[request.param](tmp_path))
    yield opened
    opened.close()


# --------------------------------------------------------------------------- the contract


def test_a_new_store_is_empty(store: AlertStore) -> None:
    assert store.count_alerts() == 0 and store.count_dead_letters() == 0
    assert store.recent_alerts() == [] and store.dead_letters() == []


def test_alerts_round_trip_every_field(store: AlertStore) -> None:
    written = alert(1, amount=1234.5678, score=0.6180339887498949, threshold=0.5809275152604033)
    store.write([written])
    assert store.recent_alerts() == [written]


def test_the_same_alert_twice_is_stored_once(store: AlertStore) -> None:
    store.write([alert(1), alert(2)])
    store.write([alert(1)])
    store.write([alert(1), alert(1)])  # twice in one batch too
    assert store.count_alerts() == 2
    assert sorted(a.transaction_id for a in store.recent_alerts()) == ["t1", "t2"]


def test_a_rewritten_alert_replaces_the_old_one(store: AlertStore) -> None:
    store.write([alert(1, score=0.7)])
    store.write([alert(1, score=0.9, reasons=("changed",))])
    assert store.count_alerts() == 1
    (only,) = store.recent_alerts()
    assert (only.score, only.reasons) == (0.9, ("changed",))


def test_dead_letters_are_keyed_by_source_and_position(store: AlertStore) -> None:
    first = DeadLetter("file:a.csv", "12", "amount", "must be greater than 0, got -5.0", "t12,...,-5")
    store.write([], [first])
    store.write([], [DeadLetter("file:a.csv", "12", "amount", "must be greater than 0, got -5.0", "t12,...,-5")])
    assert store.count_dead_letters() == 1
    store.write([], [DeadLetter("file:b.csv", "12", "amount", "x", "raw"), DeadLetter("file:a.csv", "13", None, "unreadable row", "{")])
    assert store.count_dead_letters() == 3
    letters = store.dead_letters()
    assert {letter.key() for letter in letters} == {"file:a.csv#12", "file:b.csv#12", "file:a.csv#13"}
    assert first in letters
    assert DeadLetter("file:a.csv", "13", None, "unreadable row", "{") in letters  # field None survives


def test_alerts_and_dead_letters_in_one_write(store: AlertStore) -> None:
    store.write([alert(1), alert(2), alert(3)], [DeadLetter("s", str(i), "card_id", "is required", "r") for i in range(4)])
    assert store.count_alerts() == 3 and store.count_dead_letters() == 4


def test_recent_alerts_newest_first_and_limited(store: AlertStore) -> None:
    # written out of time order; t5 and t6 share a timestamp
    times = {0: 3, 1: 0, 2: 7, 3: 1, 4: 5, 5: 9, 6: 9, 7: 2}
    store.write([alert(n, T0 + hours * HOUR) for n, hours in times.items()])
    newest = store.recent_alerts()
    assert [a.timestamp_ms for a in newest] == sorted((T0 + h * HOUR for h in times.values()), reverse=True)
    assert [a.transaction_id for a in newest] == ["t6", "t5", "t2", "t4", "t0", "t7", "t3", "t1"]
    assert [a.transaction_id for a in store.recent_alerts(limit=3)] == ["t6", "t5", "t2"]
    assert store.recent_alerts(limit=0) == []
    assert len(store.recent_alerts(limit=100)) == 8


def test_recent_alerts_default_limit_is_20(store: AlertStore) -> None:
    store.write([alert(n, T0 + n) for n in range(25)])
    recent = store.recent_alerts()
    assert [a.transaction_id for a in recent] == [f"t{n}" for n in range(24, 4, -1)]


def test_dead_letters_limit(store: AlertStore) -> None:
    store.write([], [DeadLetter("s", str(i), None, "bad", f"row {i}") for i in range(1, 151)])
    assert store.count_dead_letters() == 150
    assert len(store.dead_letters()) == 100  # the default
    assert len(store.dead_letters(limit=7)) == 7
    assert {d.raw for d in store.dead_letters(limit=1000)} == {f"row {i}" for i in range(1, 151)}


UNICODE = "Zürich · 東京 · Москва · مرحبا · 🃏💳 · e\u0301 · tab\tnew\nline · quote'\" · back\\slash · nul\x00end"


def test_unicode_round_trips(store: AlertStore) -> None:
    written = alert(
        1,
        transaction_id="tx-" + UNICODE,
        card_id="卡-" + UNICODE,
        merchant_id="🛒" + UNICODE,
        reasons=(UNICODE, "🚨"),
        model_version="v-ü",
        record={"transaction_id": "tx-" + UNICODE, "note": UNICODE, "nested": {"ключ": ["値", 1, None, True]}},
    )
    letter = DeadLetter("file:données/交易.csv", "7", "merchant_category", UNICODE, UNICODE)
    store.write([written], [letter])
    assert store.recent_alerts() == [written]
    assert store.dead_letters() == [letter]


def test_very_large_fields_round_trip(store: AlertStore) -> None:
    big = "x" * 2_000_000 + "é"
    written = alert(
        1,
        timestamp_ms=253_402_300_799_999,  # 9999-12-31T23:59:59.999Z
        amount=1e12,
        reasons=tuple(f"reason {i}: {'y' * 1000}" for i in range(50)),
        record={"blob": big, "many": list(range(10_000))},
    )
    letter = DeadLetter("s", "1", None, "r" * 100_000, "z" * (MAX_RAW_BYTES * 3))
    assert len(letter.raw) == MAX_RAW_BYTES  # cut when the letter is made, not by the store
    store.write([written], [letter])
    (back,) = store.recent_alerts()
    assert back == written
    assert store.dead_letters() == [letter]


# --------------------------------------------------------------------------- SQLite specifics


def test_sqlite_keeps_data_across_reopen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'alerts.db'}"
    first = open_store(url)
    first.write([alert(1), alert(2)], [DeadLetter("s", "1", None, "bad", "{")])
    first.close()
    again = open_store(url)
    assert again.count_alerts() == 2 and again.count_dead_letters() == 1
    assert again.recent_alerts(limit=1) == [alert(2)]  # same time as t1: the larger id first
    again.close()


def test_sqlite_writes_a_batch_all_or_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "alerts.db")
    store.write([alert(0)])
    # the database rejects the dead letter (reason is NOT NULL) after the alerts went in: roll back all of it
    broken = DeadLetter("s", "1", None, None, "raw")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        store.write([alert(1), alert(2)], [DeadLetter("s", "0", None, "ok", "raw"), broken])
    assert store.count_alerts() == 1 and store.count_dead_letters() == 0
    store.write([alert(1)])  # and the store still works
    assert store.count_alerts() == 2
    store.close()


# --------------------------------------------------------------------------- open_store URLs


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    for target in (tmp_path / "a" / "alerts.db", str(tmp_path / "b.db")):
        store = open_store(target)
        assert isinstance(store, SqliteAlertStore)
        assert store.path == Path(target)
        store.write([alert(1)])
        store.close()
        assert Path(target).is_file()


def test_sqlite_url_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://var/alerts.db")
    assert isinstance(store, SqliteAlertStore)
    store.write([alert(1)])
    store.close()
    assert (tmp_path / "var" / "alerts.db").is_file()


def test_sqlite_url_with_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "abs" / "alerts.db"
    monkeypatch.chdir(tmp_path)
    url = f"sqlite://{target}"
    assert url.startswith("sqlite:///")
    store = open_store(url)
    assert isinstance(store, SqliteAlertStore) and store.path == target
    store.close()
    assert target.is_file()
    assert not (tmp_path / target.relative_to("/")).exists()  # not taken as relative


def test_memory_url_opens_a_fresh_store_each_time() -> None:
    one, two = open_store("memory://"), open_store("memory://")
    assert isinstance(one, MemoryAlertStore) and isinstance(two, MemoryAlertStore)
    one.write([alert(1)])
    assert one.count_alerts() == 1 and two.count_alerts() == 0


@pytest.mark.parametrize("url", ["redis://localhost:6379", "solr://es:8983/alerts", "sqlit://x.db", "://x"])
def test_an_unknown_scheme_names_the_choices(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(url)
    message = str(caught.value)
    assert repr(url.partition("://")[0]) in message
    for scheme in BACKENDS:
        assert scheme in message


def test_a_sqlite_url_without_a_path_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        open_store("sqlite://")


# --------------------------------------------------------------------------- CheckpointFile


def checkpoint(position: int = 42) -> Checkpoint:
    return Checkpoint(
        source="file:stream.csv",
        features_version="1-test",
        model_version="iforest-test-1",
        position=position,
        counters={"read": position, "scored": position - 2, "alerts": 3, "dead_letters": 2},
        state={"cards": {"card-1": [1, 2.5, [3.25, -0.1], None, "é"]}, "merchants": {"m-1": [0.1 + 0.2, 10**15]}},
    )


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path / "deep" / "dir" / "run.checkpoint")
    assert file.load() is None  # nothing saved yet
    saved = checkpoint()
    file.save(saved)
    loaded = file.load()
    assert loaded == saved
    assert loaded.format == CHECKPOINT_FORMAT
    assert loaded.state["merchants"]["m-1"][0] == 0.1 + 0.2  # floats exactly


def test_checkpoint_save_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    file = CheckpointFile(path)
    file.save(checkpoint(10))
    inode = path.stat().st_ino
    file.save(checkpoint(20))
    assert file.load().position == 20
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.checkpoint"]
    file.clear()
    assert not path.exists() and file.load() is None
    file.clear()  # clearing twice is fine


def test_checkpoint_of_another_format_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    path.write_bytes(msgspec.msgpack.encode(msgspec.structs.replace(checkpoint(), format=CHECKPOINT_FORMAT + 1)))
    with pytest.raises(CheckpointMismatch, match=f"found {CHECKPOINT_FORMAT + 1}"):
        CheckpointFile(path).load()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(msgspec.msgpack.encode({"format": CHECKPOINT_FORMAT + 1, "offsets": {"0": 12}}), id="future-format"),
        pytest.param(b"SQLite format 3\x00" + bytes(range(64)), id="not-a-checkpoint"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_a_mismatch(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.checkpoint"
    path.write_bytes(content)
    with pytest.raises(CheckpointMismatch):
        CheckpointFile(path).load()


def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint"
    file = CheckpointFile(path)
    file.save(checkpoint(10))
    broken = msgspec.structs.replace(checkpoint(20), state={"cards": {"c": object()}, "merchants": {}})
    with pytest.raises(TypeError):
        file.save(broken)
    assert file.load().position == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.checkpoint"]


def _open_and_close(path: str) -> str:
    try:
        SqliteAlertStore(path).close()
    except Exception as error:  # reported back to the parent, which asserts on it
        return repr(error)
    return ""


def test_many_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Two runners starting together on a fresh store must not see each other's half-made schema."""
    import multiprocessing

    for round_ in range(5):
        path = str(tmp_path / f"race-{round_}.db")
        with multiprocessing.get_context("fork").Pool(8) as pool:
            errors = pool.map(_open_and_close, [path] * 16)
        assert [e for e in errors if e] == []


def test_a_schema_2_store_is_upgraded_in_place_with_its_rollups_filled(tmp_path: Path) -> None:
    """The demo's alerts.db from before the roll-ups opens, keeps its alerts and labels and aggregates exactly."""
    from fraudstream.services.stores.alerts import sqlite_rollups

    alerts = [Alert(f"t{i}", T0 + i * HOUR // 3, f"c{i % 4}", f"m{i % 3}", 10.0 + i, 0.5 + i / 100, 0.55, ("r",), "v1",
                    {"merchant_category": "grocery" if i % 2 else "travel", "country": "US", "channel": "online"})
              for i in range(40)]
    path = tmp_path / "old.db"
    store = SqliteAlertStore(path)
    store.write(alerts)
    store.set_label("t3", "fraud", "ana", T0)
    store.close()
    with sqlite3.connect(path) as db:  # turn it back into what fraudstream wrote at schema 2
        for (kind, name) in db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger')").fetchall():
            if name.startswith(("rollup", "entity_totals", "runner_status")) or kind == "trigger":
                db.execute(f"DROP {kind} {name}")
        db.execute("PRAGMA user_version=2")
    upgraded = SqliteAlertStore(path)
    reference = MemoryAlertStore()
    reference.write(alerts)
    reference.set_label("t3", "fraud", "ana", T0)
    try:
        assert upgraded.get("t3").label == "fraud" and upgraded.count_alerts() == 40
        for query in (AlertQuery(), AlertQuery(start_ms=T0 + HOUR + 5, end_ms=T0 + 9 * HOUR), AlertQuery(label="fraud")):
            assert upgraded.alerts_over_time(query, HOUR) == reference.alerts_over_time(query, HOUR)
            assert upgraded.count_by("merchant_category", query) == reference.count_by("merchant_category", query)
            assert upgraded.top_entities("card", query, limit=3) == reference.top_entities("card", query, limit=3)
            assert upgraded.histogram("score", query, [0.5, 0.6, 0.7, 1.0]) == reference.histogram("score", query, [0.5, 0.6, 0.7, 1.0])
        assert not sqlite_rollups.pending(upgraded._db)
    finally:
        upgraded.close()


def test_a_store_from_an_unknown_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    SqliteAlertStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=1")
    with pytest.raises(ValueError, match=f"schema 1, this one needs {SCHEMA_VERSION}"):
        SqliteAlertStore(path)


def test_sqlite_labels_from_many_threads_at_once_are_all_kept_with_their_audit_trail(tmp_path: Path) -> None:
    """The dashboard shares one store across analysts' sessions (threads): labels must not interleave."""
    from concurrent.futures import ThreadPoolExecutor

    store = SqliteAlertStore(tmp_path / "alerts.db")
    alerts = [Alert(f"t{i:05d}", T0 + i, f"c{i % 50}", "m", 10.0, 0.7, 0.55, ("r",), "v1", {}) for i in range(2_000)]
    store.write(alerts)

    def label(i: int) -> None:
        store.set_label(f"t{i:05d}", "fraud" if i % 2 else "legitimate", f"analyst-{i % 8}", T0 + i)
        store.search(AlertQuery(card_id=f"c{i % 50}"), limit=5)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(label, range(0, 2_000, 2)))  # raises the first error any thread hit
        assert store.count_alerts(AlertQuery(label="legitimate")) == 1_000
        with sqlite3.connect(tmp_path / "alerts.db") as db:
            assert db.execute("SELECT count(*) FROM label_events").fetchone()[0] == 1_000
    finally:
        store.close()
