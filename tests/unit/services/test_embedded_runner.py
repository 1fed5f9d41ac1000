"""The embedded runner over in-memory sources and the in-memory store: scoring, dead letters,
batching, stop and resume from a checkpoint, and the run statistics."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fraudstream.model.bundle import ModelBundle
from fraudstream.model.features.step import FEATURES_VERSION
from fraudstream.model.schema import to_record, validate
from fraudstream.model.scoring import Scorer
from fraudstream.model.train import feature_matrix, train_bundle
from fraudstream.services.runners import embedded
from fraudstream.services.runners.checkpoint import CheckpointFile, CheckpointMismatch
from fraudstream.services.runners.embedded import EmbeddedRunner
from fraudstream.services.runners.stats import RunStats
from fraudstream.services.sources.base import IDLE, SourceItem
from fraudstream.services.sources.files import RawRow
from fraudstream.services.sources.generator import GeneratorConfig, generate
from fraudstream.services.stores.alerts.base import Alert
from fraudstream.services.stores.alerts.memory import MemoryAlertStore
from fraudstream.services.stores.dead_letters import RECORD_LEVEL, DeadLetter

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return list(generate(GeneratorConfig(cards=300, days=6, seed=1)))


@pytest.fixture(scope="module")
def bundle(rows: list[dict[str, Any]]) -> ModelBundle:
    return train_bundle(feature_matrix([validate(r) for r in rows]), created_at="test")


class ListSource:
    """A replayable source over a fixed list of items: RawRow (positions as given) and IDLE markers."""

    def __init__(self, items: Sequence[SourceItem], name: str = "test:list") -> None:
        self.items = list(items)
        self._name = name
        self.afters: list[int] = []  # the ``after`` of every rows() call

    @property
    def name(self) -> str:
        return self._name

    def rows(self, after: int = 0) -> Iterator[SourceItem]:
        self.afters.append(after)
        for item in self.items:
            if item is IDLE or item.position > after:  # type: ignore[union-attr]
                yield item


def raw_rows(data: Sequence[dict[str, Any] | None]) -> list[RawRow]:
    return [RawRow(i, d, "") for i, d in enumerate(data, start=1)]


BAD_JSON = '{"transaction_id": "x", "amount": '


def with_bad_rows(rows: list[dict[str, Any]]) -> tuple[list[RawRow], dict[int, tuple[str | None, str]]]:
    """Valid rows with three kinds of bad ones mixed in; returns the items and {position: (field, reason start)}."""
    items: list[RawRow] = []
    expected: dict[int, tuple[str | None, str]] = {}
    position = 0
    for i, row in enumerate(rows):
        if i % 500 == 17:
            position += 1
            items.append(RawRow(position, None, BAD_JSON, "not valid JSON: truncated"))
            expected[position] = (None, "not valid JSON")
        if i % 500 == 250:
            position += 1
            items.append(RawRow(position, {k: v for k, v in row.items() if k != "card_id"} | {"transaction_id": f"bad-card-{i}"}, ""))
            expected[position] = ("card_id", "is required")
        if i % 500 == 400:
            position += 1
            items.append(RawRow(position, {**row, "transaction_id": f"bad-amount-{i}", "amount": -5.0}, f"raw text {i}"))
            expected[position] = ("amount", "must be 0 or more")
        position += 1
        items.append(RawRow(position, row, ""))
    return items, expected


def expected_alerts(bundle: ModelBundle, rows: list[dict[str, Any]]) -> dict[str, tuple[float, tuple[str, ...]]]:
    """transaction_id → (score, reasons) for every row the pure scorer alerts on."""
    decisions = Scorer(bundle).decide_batch([validate(r) for r in rows])
    return {d.transaction_id: (d.score, d.reasons) for d in decisions if d.alert}


def run(source: Any, bundle: ModelBundle, store: MemoryAlertStore | None = None, **options: Any) -> tuple[RunStats, MemoryAlertStore]:
    store = store if store is not None else MemoryAlertStore()
    stats = EmbeddedRunner(source, bundle, store, **options).run()
    return stats, store


# --------------------------------------------------------------------------- scoring


def test_every_valid_row_is_scored_once_and_alerts_match_the_pure_scorer(
    rows: list[dict[str, Any]], bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    class SpyScorer(Scorer):
        def decide_batch(self, txns):  # type: ignore[no-untyped-def]
            seen.extend(t.transaction_id for t in txns)
            return super().decide_batch(txns)

    monkeypatch.setattr(embedded, "Scorer", SpyScorer)
    items, bad = with_bad_rows(rows)
    stats, store = run(ListSource(items), bundle, batch_size=333)

    assert seen == [r["transaction_id"] for r in rows]  # each valid row once, in order, no invalid row
    want = expected_alerts(bundle, rows)
    assert len(want) > 10  # the model does alert on this data, so the comparison means something
    assert set(store.alerts) == set(want)
    by_id = {r["transaction_id"]: r for r in rows}
    for tid, alert in store.alerts.items():
        score, reasons = want[tid]
        assert alert.score == score
        assert alert.reasons == reasons and len(reasons) > 0
        assert alert.threshold == bundle.threshold and alert.score >= bundle.threshold
        assert alert.model_version == bundle.version
        txn = validate(by_id[tid])
        assert alert.record == to_record(txn)
        assert (alert.timestamp_ms, alert.card_id, alert.merchant_id, alert.amount) == (
            txn.timestamp_ms, txn.card_id, txn.merchant_id, txn.amount,
        )
    assert stats.counters == {
        "read": len(items), "scored": len(rows), "alerts": len(want), "dead_letters": len(bad), "duplicates": 0,
    }


def test_bad_rows_become_dead_letters_and_the_run_goes_on(rows: list[dict[str, Any]], bundle: ModelBundle) -> None:
    items, bad = with_bad_rows(rows)
    assert {field for field, _ in bad.values()} == {None, "card_id", "amount"}
    stats, store = run(ListSource(items, name="file:stream.jsonl"), bundle, batch_size=100)

    assert stats.finished and stats.position == len(items)
    assert store.count_dead_letters() == len(bad)
    letters = {int(letter.position): letter for letter in store.dead_letters(limit=10_000)}
    assert set(letters) == set(bad)
    for position, (field, reason) in bad.items():
        letter = letters[position]
        assert letter.source == "file:stream.jsonl"
        assert letter.key() == f"file:stream.jsonl#{position}"
        assert letter.field == field
        assert letter.reason.startswith(reason), letter.reason
    raw_item = {item.position: item for item in items}
    for position, letter in letters.items():
        item = raw_item[position]
        if item.raw:  # the raw text as received
            assert letter.raw == item.raw
        else:  # no raw text from the source: the parsed row, as JSON
            assert json.loads(letter.raw) == item.data
    # rows after every bad row were still scored
    assert stats.counters["scored"] == len(rows)
    assert sum(stats.dead_letter_fields.values()) == len(bad)
    assert stats.dead_letter_fields["card_id"] == sum(1 for f, _ in bad.values() if f == "card_id")
    assert stats.dead_letter_fields["amount"] == sum(1 for f, _ in bad.values() if f == "amount")
    assert stats.dead_letter_fields[RECORD_LEVEL] == sum(1 for f, _ in bad.values() if f is None)


def test_a_source_of_only_bad_rows_writes_only_dead_letters(bundle: ModelBundle) -> None:
    items = [RawRow(1, None, "{", "not valid JSON"), RawRow(2, {"transaction_id": "t"}, '{"transaction_id": "t"}')]
    stats, store = run(ListSource(items), bundle)
    assert store.count_alerts() == 0 and store.count_dead_letters() == 2
    assert [letter.field for letter in store.dead_letters()] == [None, "timestamp"]
    assert stats.counters == {"read": 2, "scored": 0, "alerts": 0, "dead_letters": 2, "duplicates": 0}
    assert stats.latency_ms(0.5) is None  # nothing was decided


@pytest.mark.parametrize("batch_size", [1, 7, 2000])
def test_batch_size_never_changes_the_alerts(rows: list[dict[str, Any]], bundle: ModelBundle, batch_size: int) -> None:
    items, bad = with_bad_rows(rows)
    stats, store = run(ListSource(items), bundle, batch_size=batch_size)
    want = expected_alerts(bundle, rows)
    assert {tid: (a.score, a.reasons) for tid, a in store.alerts.items()} == want
    assert store.count_dead_letters() == len(bad)
    assert stats.counters["read"] == len(items) and stats.counters["alerts"] == len(want)


def test_idle_flushes_a_partial_batch(rows: list[dict[str, Any]], bundle: ModelBundle) -> None:
    subset = rows[:60]
    items: list[SourceItem] = []
    for row in raw_rows(subset):
        items.append(row)
        if row.position % 5 == 0:
            items.append(IDLE)
    positions: list[int] = []
    stats, store = run(
        ListSource(items), bundle, batch_size=2000, progress_seconds=0.0,
        on_progress=lambda s: positions.append(s.position),
    )
    assert positions[:-1] == list(range(5, 61, 5))  # one flush per IDLE, not one at the end
    assert positions[-1] == 60
    assert set(store.alerts) == set(expected_alerts(bundle, subset))
    assert stats.counters["scored"] == 60


# --------------------------------------------------------------------------- stop and resume


def test_stop_from_progress_finishes_the_batch_and_a_second_run_resumes_to_the_same_store(
    rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path
) -> None:
    items, _ = with_bad_rows(rows)
    source = ListSource(items, name="file:resume.csv")
    whole_stats, whole = run(ListSource(items, name="file:resume.csv"), bundle, batch_size=97)

    checkpoint = CheckpointFile(tmp_path / "run.checkpoint")
    store = MemoryAlertStore()
    reports: list[int] = []

    def stop_after_1000(stats: RunStats) -> None:
        reports.append(stats.position)
        if stats.position >= 1000:
            runner.stop()

    runner = EmbeddedRunner(
        source, bundle, store, checkpoint, batch_size=97, progress_seconds=0.0,
        checkpoint_rows=10**9, checkpoint_seconds=10**9, on_progress=stop_after_1000,
    )
    first = runner.run()
    assert not first.finished
    assert first.position == 1067  # 11 batches of 97: the batch in flight when stop() came, no more
    assert max(reports) == 1067
    saved = checkpoint.load()
    assert saved is not None and saved.position == 1067 and saved.source == "file:resume.csv"
    assert saved.model_version == bundle.version
    assert saved.features_version == FEATURES_VERSION
    assert saved.counters == first.counters
    # the store holds exactly the first 1067 rows' results
    done = {item.data["transaction_id"] for item in items[:1067] if item.data and "card_id" in item.data}
    assert store.alerts == {tid: a for tid, a in whole.alerts.items() if tid in done}
    assert store.letters == {k: d for k, d in whole.letters.items() if int(d.position) <= 1067}
    assert 0 < store.count_alerts() < whole.count_alerts()

    second = EmbeddedRunner(source, bundle, store, checkpoint, batch_size=97).run()
    assert source.afters == [0, 1067]
    assert second.finished and second.resumed_from == 1067 and second.position == len(items)
    assert store.alerts == whole.alerts  # same alerts, same scores and reasons: the feature state resumed
    assert store.letters == whole.letters
    assert second.counters == whole_stats.counters


def test_a_finished_run_resumes_at_the_end_and_changes_nothing(
    rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path
) -> None:
    subset = rows[:300]
    source = ListSource(raw_rows(subset))
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    store = MemoryAlertStore()
    first = EmbeddedRunner(source, bundle, store, checkpoint, batch_size=50).run()
    before = dict(store.alerts)
    again = EmbeddedRunner(source, bundle, store, checkpoint, batch_size=50).run()
    assert again.finished and again.position == 300 and again.resumed_from == 300
    assert again.counters == first.counters  # nothing counted twice
    assert store.alerts == before


def test_retries_and_reused_ids_are_recognised_across_a_checkpoint_and_resume(
    rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path
) -> None:
    first, later = rows[:200], rows[200:260]
    retries = [dict(r) for r in first[-10:]]  # delivered again after the restart
    reused = [{**r, "amount": r["amount"] + 1} for r in first[-20:-10]]  # other transactions with those ids
    items = raw_rows(first + later + retries + reused)
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    store = MemoryAlertStore()
    EmbeddedRunner(ListSource(items[:200]), bundle, store, checkpoint, batch_size=50).run()
    stats = EmbeddedRunner(ListSource(items), bundle, store, checkpoint, batch_size=50).run()
    assert stats.resumed_from == 200
    assert stats.counters["duplicates"] == 10 and stats.counters["scored"] == 260
    assert [letter.field for letter in store.dead_letters()] == ["transaction_id"] * 10


def test_a_checkpoint_from_another_source_is_refused(rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path) -> None:
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    EmbeddedRunner(ListSource(raw_rows(rows[:50]), name="file:a.csv"), bundle, MemoryAlertStore(), checkpoint).run()
    store = MemoryAlertStore()
    other = EmbeddedRunner(ListSource(raw_rows(rows[:50]), name="file:b.csv"), bundle, store, checkpoint)
    with pytest.raises(CheckpointMismatch, match=r"'file:a\.csv'.*'file:b\.csv'"):
        other.run()
    assert store.count_alerts() == 0 and store.count_dead_letters() == 0
    assert checkpoint.load().source == "file:a.csv"  # left as it was


def test_a_retrained_model_resumes_the_feature_state(rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path) -> None:
    """Train, run half, retrain (a new version), run again: the second run resumes the first's feature
    state, so its alerts are the new model's verdicts on features computed over the whole stream."""
    items = raw_rows(rows)
    half = len(items) // 2
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    first = EmbeddedRunner(ListSource(items[:half]), bundle, MemoryAlertStore(), checkpoint, batch_size=100).run()
    assert first.finished and checkpoint.load().position == half

    retrained = train_bundle(feature_matrix([validate(r) for r in rows]), created_at="test", random_state=7)
    assert retrained.version != bundle.version
    store = MemoryAlertStore()
    second = EmbeddedRunner(ListSource(items), retrained, store, checkpoint, batch_size=100).run()

    assert second.resumed_from == half and second.finished
    assert second.counters["scored"] == len(rows)  # counted on from the first run, not from 0
    scorer = Scorer(retrained)  # one pass over every row: the features of an uninterrupted run
    decisions = scorer.decide_batch([validate(r) for r in rows])
    expected = {d.transaction_id for d in decisions[half:] if d.alert}
    assert expected and set(store.alerts) == expected
    assert {a.model_version for a in store.alerts.values()} == {retrained.version}
    assert checkpoint.load().model_version == retrained.version


def test_a_checkpoint_from_other_features_is_refused(
    rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    EmbeddedRunner(ListSource(raw_rows(rows[:50])), bundle, MemoryAlertStore(), checkpoint).run()
    monkeypatch.setattr(embedded, "FEATURES_VERSION", "99-newer")
    with pytest.raises(CheckpointMismatch, match="features version .* 99-newer"):
        EmbeddedRunner(ListSource(raw_rows(rows[:50])), bundle, MemoryAlertStore(), checkpoint).run()


def test_checkpoints_are_written_every_checkpoint_rows(rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path) -> None:
    checkpoint = CheckpointFile(tmp_path / "c.checkpoint")
    saved_at: list[int] = []
    real_save = checkpoint.save
    checkpoint.save = lambda c: (saved_at.append(c.position), real_save(c))  # type: ignore[method-assign]
    EmbeddedRunner(
        ListSource(raw_rows(rows[:1000])), bundle, MemoryAlertStore(), checkpoint,
        batch_size=100, checkpoint_rows=300, checkpoint_seconds=10**9,
    ).run()
    assert saved_at == [300, 600, 900, 1000]


# --------------------------------------------------------------------------- statistics


def test_run_stats_are_sane(rows: list[dict[str, Any]], bundle: ModelBundle) -> None:
    items, bad = with_bad_rows(rows)
    written: list[Alert] = []

    class RecordingStore(MemoryAlertStore):
        def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
            written.extend(alerts)
            super().write(alerts, dead_letters)

    stats, store = run(ListSource(items), bundle, RecordingStore(), batch_size=250)
    c = stats.counters
    assert c["read"] == len(items) == c["scored"] + c["dead_letters"]
    assert c["alerts"] == store.count_alerts() == len(written) > 0
    assert stats.finished and stats.position == len(items) and stats.resumed_from == 0
    assert len(stats.latencies_s) == c["scored"]
    p50, p90, p99 = stats.latency_ms(0.5), stats.latency_ms(0.9), stats.latency_ms(0.99)
    assert p50 is not None and p90 is not None and p99 is not None
    assert 0.0 <= p50 <= p90 <= p99 <= max(stats.latencies_s) * 1000 < 60_000
    assert stats.latency_ms(0.0) == pytest.approx(min(stats.latencies_s) * 1000)
    assert stats.latency_ms(1.0) == pytest.approx(max(stats.latencies_s) * 1000)
    assert stats.rate() > 0
    assert 0 < stats.elapsed_s < 120
    assert list(stats.recent_alerts) == written[-10:]


def test_empty_run_stats() -> None:
    stats = RunStats()
    assert stats.counters == {"read": 0, "scored": 0, "alerts": 0, "dead_letters": 0, "duplicates": 0}
    assert stats.latency_ms(0.99) is None
    assert stats.rate() == 0.0
    stats.latencies_s.extend([0.001, 0.002, 0.003])
    assert stats.latency_ms(0.5) == pytest.approx(2.0)


def test_stop_while_the_source_idles_flushes_and_reads_no_further(rows: list[dict[str, Any]], bundle: ModelBundle) -> None:
    consumed: list[int] = []

    class LiveSource(ListSource):
        def rows(self, after: int = 0) -> Iterator[SourceItem]:
            for item in raw_rows(rows[:40]):
                consumed.append(item.position)
                if item.position == 13:
                    runner.stop()  # e.g. Ctrl-C while the source waits for the next row
                    yield IDLE
                yield item

    store = MemoryAlertStore()
    runner = EmbeddedRunner(LiveSource([]), bundle, store, batch_size=2000)
    stats = runner.run()
    assert not stats.finished
    assert stats.position == 12 and stats.counters["scored"] == 12  # what it held was flushed
    assert consumed[-1] == 13  # nothing read after the stop
    assert set(store.alerts) == set(expected_alerts(bundle, rows[:12]))


def test_a_warmed_up_run_starts_after_the_warm_up_rows_with_their_state(rows: list[dict[str, Any]], bundle: ModelBundle,
                                                                         tmp_path: Path) -> None:
    """The demo's case: the source's first rows are the history the state was warmed with; the run scores the rest
    exactly as a run over everything would, alerts on none of the history, and a checkpoint then wins."""
    from fraudstream.services.runners.warm_up import warm_up

    cut = len(rows) // 2
    warm = warm_up((i, validate(r)) for i, r in enumerate(rows[:cut], start=1))
    source = ListSource(raw_rows(rows))
    checkpoint = CheckpointFile(tmp_path / "run.checkpoint")
    stats, store = run(source, bundle, checkpoint=checkpoint, initial_state=warm.state, initial_position=warm.last_position)
    live = {tid: hit for tid, hit in expected_alerts(bundle, rows).items() if tid in {r["transaction_id"] for r in rows[cut:]}}
    assert {a.transaction_id: (a.score, a.reasons) for a in store.alerts.values()} == live
    assert source.afters == [cut] and stats.counters["scored"] == len(rows) - cut
    again = ListSource(raw_rows(rows))
    run(again, bundle, checkpoint=checkpoint, initial_state=warm.state, initial_position=1)
    assert again.afters == [len(rows)]  # resuming: the checkpoint's position, not the warm-up's


def test_the_feature_state_is_opened_from_the_state_store_registry_with_its_ttl(
    rows: list[dict[str, Any]], bundle: ModelBundle, tmp_path: Path
) -> None:
    from fraudstream.model.features.keyed import FeatureState
    from fraudstream.model.features.state import DAY_MS
    from fraudstream.services.stores.state.registry import UnknownStateStore

    ttl = DAY_MS  # shorter than the data's quiet spells, so it changes states
    decisions = Scorer(bundle, FeatureState(ttl_ms=ttl)).decide_batch([validate(r) for r in rows])
    runner = EmbeddedRunner(ListSource(raw_rows(rows)), bundle, MemoryAlertStore(), CheckpointFile(tmp_path / "c"),
                            state_ttl_ms=ttl)
    runner.run()
    assert runner._scorer.state.ttl_ms == ttl
    got = {tid: (a.score, a.reasons) for tid, a in runner.store.alerts.items()}  # type: ignore[attr-defined]
    assert got == {d.transaction_id: (d.score, d.reasons) for d in decisions if d.alert}
    with pytest.raises(UnknownStateStore, match="memory"):
        EmbeddedRunner(ListSource(raw_rows(rows)), bundle, MemoryAlertStore(), state_store="nowhere").run()
