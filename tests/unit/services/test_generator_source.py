"""GeneratorSource: numbering, exact resume, and live pacing (checked with a fake clock)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fraudstream.services.sources.base import IDLE
from fraudstream.services.sources.files import RawRow
from fraudstream.services.sources.generator import GeneratorConfig, generate
from fraudstream.services.sources.generator_source import GeneratorSource

CONFIG = GeneratorConfig(cards=50, days=2, seed=1)
DAY2 = "2026-01-02T00:00:00.000+00:00"


@pytest.fixture(scope="module")
def expected() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


class FakeTime:
    """A clock that moves only when someone sleeps or works; records every sleep."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.last_item: object = None  # what the consumer got just before each sleep
        self.slept_after: list[object] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.slept_after.append(self.last_item)
        self.now += seconds


def consume(source: GeneratorSource, fake: FakeTime, work: dict[int, float] | None = None, after: int = 0):
    """Iterate like a runner: note when each row arrives; ``work[position]`` seconds are spent on that row."""
    arrivals: list[tuple[int, float]] = []
    idles = 0
    for item in source.rows(after=after):
        fake.last_item = item
        if item is IDLE:
            idles += 1
            continue
        arrivals.append((item.position, fake.now))
        fake.now += (work or {}).get(item.position, 0.0)
    return arrivals, idles


# --------------------------------------------------------------------------- numbering and resume


def test_rows_are_numbered_from_one_and_carry_the_generator_rows(expected: list[dict[str, Any]]) -> None:
    items = list(GeneratorSource(CONFIG).rows())
    assert IDLE not in items  # unpaced: never idles
    assert all(type(item) is RawRow for item in items)
    assert [item.position for item in items] == list(range(1, len(expected) + 1))
    assert [item.data for item in items] == expected
    assert all(item.error is None for item in items)


@pytest.mark.parametrize("after", [0, 1, 2, 57, 184, 185, 10_000])
def test_rows_after_n_resume_exactly(expected: list[dict[str, Any]], after: int) -> None:
    assert len(expected) == 185
    items = list(GeneratorSource(CONFIG).rows(after=after))
    assert [item.position for item in items] == list(range(after + 1, len(expected) + 1))
    assert [item.data for item in items] == expected[after:]


def test_the_name_identifies_the_stream() -> None:
    name = GeneratorSource(CONFIG).name
    assert name == GeneratorSource(GeneratorConfig(cards=50, days=2, seed=1)).name
    others = {
        GeneratorSource(GeneratorConfig(cards=51, days=2, seed=1)).name,
        GeneratorSource(GeneratorConfig(cards=50, days=3, seed=1)).name,
        GeneratorSource(GeneratorConfig(cards=50, days=2, seed=2)).name,
        GeneratorSource(GeneratorConfig(cards=50, days=2, seed=1, start="2026-03-01T00:00:00+00:00")).name,
    }
    assert name not in others and len(others) == 4
    # the rate is how fast, not what: a paced and an unpaced run may share a checkpoint
    assert GeneratorSource(CONFIG, rate=5.0).name == name


# --------------------------------------------------------------------------- pacing


def test_pacing_keeps_an_absolute_schedule_and_idles_before_each_wait(expected: list[dict[str, Any]]) -> None:
    fake = FakeTime()
    source = GeneratorSource(CONFIG, rate=10.0, clock=fake.clock, sleep=fake.sleep)
    # the consumer spends 0.03 s on most rows, and stalls 0.35 s on row 20
    work = {p: 0.03 for p in range(1, 186)} | {20: 0.35}
    arrivals, idles = consume(source, fake, work)

    start = arrivals[0][1]
    assert start == 1000.0  # the first row is not delayed
    assert [p for p, _ in arrivals] == list(range(1, 186))
    for position, at in arrivals:
        due = start + (position - 1) * 0.1
        if position in (21, 22, 23, 24):  # catching up after the stall: late, no sleep in between
            assert at > due + 1e-9
        else:  # on the schedule exactly: no drift however long the run
            assert at == pytest.approx(due, abs=1e-9)
    assert arrivals[-1][1] == pytest.approx(start + 184 * 0.1, abs=1e-9)
    # every wait is announced by IDLE just before it, and only waits are
    assert idles == len(fake.sleeps) == 185 - 1 - 4
    assert all(item is IDLE for item in fake.slept_after)
    assert fake.sleeps[0] == pytest.approx(0.07)


def test_a_consumer_slower_than_the_rate_is_never_made_to_wait() -> None:
    fake = FakeTime()
    source = GeneratorSource(CONFIG, rate=100.0, clock=fake.clock, sleep=fake.sleep)
    arrivals, idles = consume(source, fake, {p: 0.02 for p in range(1, 186)})
    assert idles == 0 and fake.sleeps == []
    assert len(arrivals) == 185


def test_rows_before_pace_from_are_not_paced(expected: list[dict[str, Any]]) -> None:
    first_paced = next(i for i, row in enumerate(expected, start=1) if row["timestamp"] >= DAY2)
    assert 1 < first_paced < 185
    fake = FakeTime()
    source = GeneratorSource(CONFIG, rate=2.0, pace_from=DAY2, clock=fake.clock, sleep=fake.sleep)
    arrivals, idles = consume(source, fake)

    before = [at for p, at in arrivals if p < first_paced]
    assert before == [1000.0] * (first_paced - 1)  # history replayed at once
    paced = [(p, at) for p, at in arrivals if p >= first_paced]
    assert [at for _, at in paced] == pytest.approx([1000.0 + 0.5 * k for k in range(len(paced))])
    assert idles == len(fake.sleeps) == len(paced) - 1


def test_rows_skipped_on_resume_are_not_paced_and_the_schedule_restarts() -> None:
    fake = FakeTime()
    source = GeneratorSource(CONFIG, rate=4.0, clock=fake.clock, sleep=fake.sleep)
    arrivals, idles = consume(source, fake, after=150)
    assert [p for p, _ in arrivals] == list(range(151, 186))
    assert [at for _, at in arrivals] == pytest.approx([1000.0 + 0.25 * k for k in range(35)])
    assert idles == 34 and sum(fake.sleeps) == pytest.approx(34 * 0.25)


def test_pace_from_is_an_instant_whatever_its_offset(expected: list[dict[str, Any]]) -> None:
    def paced_positions(pace_from: str) -> list[int]:
        fake = FakeTime()
        source = GeneratorSource(CONFIG, rate=1000.0, pace_from=pace_from, clock=fake.clock, sleep=fake.sleep)
        positions, waiting = [], False
        for item in source.rows():
            fake.last_item = item
            if item is IDLE:
                waiting = True
            else:
                if waiting:
                    positions.append(item.position)
                waiting = False
        return positions

    utc = paced_positions("2026-01-02T00:00:00+00:00")
    assert len(utc) > 50
    assert paced_positions("2026-01-02T05:00:00+05:00") == utc  # the same instant


@pytest.mark.parametrize("rate", [0.0, -1.0, -0.001])
def test_a_rate_that_is_not_positive_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be a positive number"):
        GeneratorSource(CONFIG, rate=rate)


def test_a_nan_rate_is_rejected() -> None:
    with pytest.raises(ValueError):
        GeneratorSource(CONFIG, rate=float("nan"))


def test_pacing_reads_the_clock_only_once_it_paces() -> None:
    reads = itertools.count()
    source = GeneratorSource(CONFIG, rate=5.0, pace_from="2099-01-01T00:00:00Z", clock=lambda: next(reads), sleep=pytest.fail)
    assert len(list(source.rows())) == 185  # nothing reaches pace_from: no IDLE, no sleep
    assert next(reads) == 0
