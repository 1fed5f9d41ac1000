"""Tests for the synthetic transaction generator: determinism, order, fraud signatures, files, pacing."""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pytest

from fraudstream.services.sources.generator import (
    FIELDS,
    SCENARIOS,
    GeneratorConfig,
    estimate_rows,
    generate,
    live,
    pace,
    write_transactions,
)

CONFIG = GeneratorConfig(cards=1500, days=14, seed=11)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def _time(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["timestamp"])


def _by_card(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    cards: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cards[row["card_id"]].append(row)
    return cards


def _runs(rows: list[dict[str, Any]], scenario: str) -> list[list[dict[str, Any]]]:
    """Consecutive rows of one card in one scenario, split where the card did something else."""
    runs = []
    for history in _by_card(rows).values():
        current: list[dict[str, Any]] = []
        for row in history:
            if row["scenario"] == scenario:
                current.append(row)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
    return runs


def test_same_seed_same_rows_and_other_seed_other_rows() -> None:
    small = GeneratorConfig(cards=200, days=3, seed=5)
    first = list(generate(small))
    assert first == list(generate(small))
    assert first != list(generate(GeneratorConfig(cards=200, days=3, seed=6)))


def test_rows_have_the_canonical_keys_and_types(rows: list[dict[str, Any]]) -> None:
    for row in rows[:2000]:
        assert tuple(row) == FIELDS
        assert row["amount"] > 0 and round(row["amount"], 2) == row["amount"]
        assert row["currency"] == "USD"
        assert row["channel"] in ("card_present", "online", "atm")
        assert (row["device_id"] is None) == (row["channel"] != "online")
        assert (row["ip"] is None) == (row["channel"] != "online")
        assert row["timestamp"].endswith("+00:00") and len(row["timestamp"]) == 29
        assert len(row["country"]) == 2


def test_rows_are_time_ordered_with_unique_ids(rows: list[dict[str, Any]]) -> None:
    stamps = [r["timestamp"] for r in rows]  # same width and offset: text order is time order
    assert stamps == sorted(stamps)
    ids = [r["transaction_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert ids[:2] == ["tx-000000000000", "tx-000000000001"]


def test_rows_stay_inside_the_window_even_when_it_starts_mid_day() -> None:
    cfg = GeneratorConfig(cards=300, days=1, seed=2, start="2026-03-04T08:30:00+00:00")
    got = list(generate(cfg))
    begin = datetime.fromisoformat(cfg.start)
    assert got and all(begin <= _time(r) < begin + timedelta(days=1) for r in got)
    assert _time(got[0]) < begin + timedelta(hours=1)


def test_every_scenario_is_present_and_labelled(rows: list[dict[str, Any]]) -> None:
    counts = {s: 0 for s in SCENARIOS}
    for row in rows:
        assert row["is_fraud"] == (1 if row["scenario"] else 0)
        if row["scenario"]:
            counts[row["scenario"]] += 1
    assert set(SCENARIOS) == {"high_amount", "night_spree", "impossible_travel",
                              "compromised_merchant", "card_testing"}
    share = sum(counts.values()) / len(rows)
    assert 0.004 <= share <= 0.009, share
    for name, n in counts.items():
        assert n / len(rows) >= 0.0007, (name, n)


def test_fraud_rate_setting_is_followed() -> None:
    cfg = GeneratorConfig(cards=1000, days=10, seed=3, fraud_rate=0.02)
    got = list(generate(cfg))
    share = sum(r["is_fraud"] for r in got) / len(got)
    assert 0.015 <= share <= 0.025, share
    none = list(generate(GeneratorConfig(cards=300, days=3, seed=3, fraud_rate=0.0)))
    assert not any(r["is_fraud"] for r in none)


def test_high_amount_is_far_above_the_cards_own_habit(rows: list[dict[str, Any]]) -> None:
    checked = 0
    for history in _by_card(rows).values():
        legit = [r["amount"] for r in history if not r["is_fraud"]]
        for row in history:
            if row["scenario"] == "high_amount" and len(legit) >= 3:
                assert row["amount"] > 3 * median(legit)
                assert row["merchant_category"] in ("electronics", "jewelry", "online_retail")
                checked += 1
    assert checked >= 20


def test_night_spree_is_a_burst_at_night_in_unused_categories(rows: list[dict[str, Any]]) -> None:
    runs = _runs(rows, "night_spree")
    assert runs
    cards = _by_card(rows)
    for run in runs:
        used = {r["merchant_category"] for r in cards[run[0]["card_id"]] if not r["is_fraud"]}
        for row in run:
            assert 1 <= _time(row).hour < 5
            assert row["merchant_category"] not in used
    assert max(len(run) for run in runs) >= 3


def test_impossible_travel_is_far_from_the_previous_transaction_within_an_hour(
        rows: list[dict[str, Any]]) -> None:
    checked = 0
    for history in _by_card(rows).values():
        for before, row in zip(history, history[1:]):
            if row["scenario"] != "impossible_travel" or before["scenario"] == "impossible_travel":
                continue
            assert row["channel"] == "card_present" and row["country"] != "US"
            gap = _time(row) - _time(before)
            assert timedelta(0) <= gap <= timedelta(hours=1)
            assert _km(before["merchant_lat"], before["merchant_lon"],
                       row["merchant_lat"], row["merchant_lon"]) > 1000
            checked += 1
    assert checked >= 20


def test_compromised_merchant_charges_many_new_cards_in_a_short_window(
        rows: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, str]] = set()
    spikes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = (row["card_id"], row["merchant_id"])
        if row["scenario"] == "compromised_merchant":
            assert key not in seen, "card had shopped at the merchant before"
            spikes[(row["merchant_id"], row["timestamp"][:10])].append(row)
        seen.add(key)
    big = [run for run in spikes.values() if len(run) >= 8]
    assert big
    for run in big:
        assert len({r["card_id"] for r in run}) >= 0.9 * len(run)
        assert _time(run[-1]) - _time(run[0]) <= timedelta(hours=3)


def test_card_testing_is_tiny_online_amounts_seconds_apart(rows: list[dict[str, Any]]) -> None:
    runs = _runs(rows, "card_testing")
    assert runs
    for run in runs:
        tiny = [r for r in run if r["amount"] <= 3.0]
        assert len(tiny) >= 4
        assert all(r["channel"] == "online" and r["amount"] >= 0.5 for r in run)
        assert len({r["merchant_id"] for r in tiny}) <= 2
        gaps = [_time(b) - _time(a) for a, b in zip(tiny, tiny[1:])]
        assert max(gaps) <= timedelta(minutes=5)


def test_legitimate_traffic_overlaps_the_fraud_signals(rows: list[dict[str, Any]]) -> None:
    """No single global value separates fraud: legit rows also travel, spend big and small, at night."""
    legit = [r for r in rows if not r["is_fraud"]]
    fraud_high = min(r["amount"] for r in rows if r["scenario"] == "high_amount")
    assert sum(r["amount"] > fraud_high for r in legit) > 50
    assert sum(r["amount"] <= 3.0 for r in legit) > 200
    assert sum(1 <= _time(r).hour < 5 for r in legit) > 200
    abroad = [r for r in legit if r["channel"] == "card_present" and r["country"] != "US"]
    assert len(abroad) > 20
    us_share = sum(r["country"] == "US" for r in legit) / len(legit)
    assert us_share > 0.95


def test_cards_shop_mostly_near_home(rows: list[dict[str, Any]]) -> None:
    shop = [r for r in rows[:5000] if r["channel"] == "card_present" and not r["is_fraud"]]
    near = sum(_km(r["card_lat"], r["card_lon"], r["merchant_lat"], r["merchant_lon"]) < 100
               for r in shop)
    assert near / len(shop) > 0.85


def test_daily_rhythm_has_quiet_nights_and_busy_days(rows: list[dict[str, Any]]) -> None:
    hours = [0] * 24
    for row in rows:
        hours[_time(row).hour] += 1
    assert sum(hours[1:5]) * 4 < sum(hours[11:15])


def test_estimate_rows_is_close() -> None:
    cfg = GeneratorConfig(cards=500, days=6, seed=4)
    actual = sum(1 for _ in generate(cfg))
    assert abs(estimate_rows(cfg) - actual) <= 0.05 * actual


@pytest.mark.parametrize("bad", [
    {"cards": 0}, {"days": 0}, {"fraud_rate": -0.1}, {"fraud_rate": 0.6},
    {"merchants": 5}, {"start": "yesterday"},
])
def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


SMALL = GeneratorConfig(cards=150, days=2, seed=9)


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if ".csv" in path.name:
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f]


def _as_text(row: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in row.items()}


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.jsonl", "t.jsonl.gz"])
def test_files_round_trip(tmp_path: Path, name: str) -> None:
    original = list(generate(SMALL))
    path = tmp_path / "out" / name
    assert write_transactions(iter(original), path) == len(original)
    back = _read(path)
    if ".csv" in name:
        assert back == [_as_text(r) for r in original]
    else:
        assert back == original
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left behind


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    write_transactions(generate(SMALL), tmp_path / "a.csv.gz")
    write_transactions(generate(SMALL), tmp_path / "b.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()


def test_failed_write_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("old\n")

    def broken():
        yield from list(generate(SMALL))[:10]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        write_transactions(broken(), path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]


def test_unknown_suffix_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=".csv"):
        write_transactions([], tmp_path / "t.parquet")


def test_progress_bar_and_rows_with_missing_keys(tmp_path: Path, capsys) -> None:
    rows = [{"a": 1, "b": None}, {"a": 2}]
    path = tmp_path / "t.csv"
    assert write_transactions(rows, path, total=5, progress=True) == 2
    assert path.read_text() == "a,b\n1,\n2,\n"
    assert "2/2" in capsys.readouterr().out


class FakeTime:
    """A clock that moves only when slept on or pushed, recording every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pace_emits_rows_on_an_absolute_schedule() -> None:
    fake = FakeTime()
    emitted = []
    for i, row in enumerate(pace(({"i": i} for i in range(6)), 4.0,
                                 clock=fake.clock, sleep=fake.sleep)):
        emitted.append((row["i"], fake.now))
        if i == 1:
            fake.now += 0.6  # a slow consumer: the next rows catch up instead of drifting
    times = [t for _, t in emitted]
    assert [i for i, _ in emitted] == list(range(6))
    assert times[:2] == pytest.approx([100.0, 100.25])
    assert times[2] == pytest.approx(100.85) and times[3] == pytest.approx(100.85)
    assert times[4:] == pytest.approx([101.0, 101.25])


def test_pace_without_rate_never_sleeps_and_rejects_bad_rates() -> None:
    fake = FakeTime()
    assert list(pace([{"a": 1}] * 3, None, clock=fake.clock, sleep=fake.sleep)) == [{"a": 1}] * 3
    assert fake.sleeps == []
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            pace([], bad)


def test_live_uses_the_given_start() -> None:
    stream = live(GeneratorConfig(cards=100, days=1, seed=1), rate=1e9,
                  start="2027-05-01T00:00:00+00:00")
    first = next(stream)
    assert first["timestamp"].startswith("2027-05-01")
