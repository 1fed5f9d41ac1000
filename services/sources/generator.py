"""Synthetic card transactions with labelled fraud: deterministic by seed, fast, time-ordered.

Used for the demo, tests, benchmarks and detection-quality figures. Rows follow the canonical
layout (see DESIGN.md); the population and its habits live in ``generator_world``, a day of
legitimate activity in ``generator_day`` and the fraud scenarios in ``generator_fraud``.

>>> rows = list(generate(GeneratorConfig(cards=50, days=2, seed=1)))
>>> rows[0]["transaction_id"], rows[0]["currency"]
('tx-000000000000', 'USD')
>>> rows == list(generate(GeneratorConfig(cards=50, days=2, seed=1)))
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from fraudstream.services.sources.generator_day import DAY_MS, DayRows, Trips, advance_trips, legit_day
from fraudstream.services.sources.generator_fraud import SCENARIOS, Day, FraudBudget, fraud_day
from fraudstream.services.sources.generator_world import CATEGORY_NAMES, CHANNELS, World, build_world
from fraudstream.services.sources.generator_write import write_transactions

__all__ = [
    "FIELDS",
    "SCENARIOS",
    "GeneratorConfig",
    "estimate_rows",
    "generate",
    "live",
    "pace",
    "write_transactions",
]

FIELDS: tuple[str, ...] = (
    "transaction_id", "timestamp", "card_id", "merchant_id", "amount", "currency",
    "merchant_category", "channel", "country", "card_lat", "card_lon", "merchant_lat",
    "merchant_lon", "device_id", "ip", "is_fraud", "scenario",
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Size, span and seed of a synthetic stream; the same config always gives the same rows."""

    cards: int = 2_000
    merchants: int | None = None  # default: max(50, cards // 10)
    days: int = 30
    seed: int = 7
    start: str = "2026-01-01T00:00:00+00:00"
    fraud_rate: float = 0.006  # target fraction of fraudulent rows (approximately)

    def __post_init__(self) -> None:
        if self.cards < 1:
            raise ValueError(f"cards must be at least 1, got {self.cards}")
        if self.merchants is not None and self.merchants < 30:
            raise ValueError(f"merchants must be at least 30, got {self.merchants}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ValueError(f"fraud_rate must be in [0, 0.5), got {self.fraud_rate}")
        _start_ms(self.start)  # fail early on a bad timestamp

    @property
    def merchant_count(self) -> int:
        return self.merchants if self.merchants is not None else max(50, self.cards // 10)


def _start_ms(start: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(start)
    except ValueError as exc:
        raise ValueError(f"start is not an RFC 3339 timestamp: {start!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@lru_cache(maxsize=2)
def _world(seed: int, cards: int, merchants: int) -> World:
    # Cached so estimate_rows() followed by generate() builds the population once.
    return build_world(seed, cards, merchants)


def _days(config: GeneratorConfig) -> Iterator[tuple[int, int]]:
    """(index, midnight in epoch ms) of each UTC calendar day that overlaps the window."""
    begin = _start_ms(config.start)
    end = begin + config.days * DAY_MS
    midnight = begin - begin % DAY_MS
    index = 0
    while midnight < end:
        yield index, midnight
        midnight += DAY_MS
        index += 1


def _is_weekend(midnight_ms: int) -> bool:
    return datetime.fromtimestamp(midnight_ms / 1000, UTC).weekday() >= 5


def generate(config: GeneratorConfig) -> Iterator[dict[str, Any]]:
    """Yield canonical transaction rows in timestamp order, one simulated day at a time."""
    world = _world(config.seed, config.cards, config.merchant_count)
    begin = _start_ms(config.start)
    end = begin + config.days * DAY_MS
    trips = Trips.at_home(config.cards)
    budget = FraudBudget.start(np.random.default_rng([config.seed, 2]))
    next_id = 0
    for index, midnight in _days(config):
        rng = np.random.default_rng([config.seed, 1, index])
        advance_trips(world, rng, trips)
        legit = legit_day(world, rng, trips, _is_weekend(midnight))
        fraud = fraud_day(Day(world, rng, legit, trips), budget, config.fraud_rate)
        rows = DayRows.concat([legit, fraud])
        # Stable sort: ties in time go by card, then legitimate before fraud, then draw order.
        rows = rows.take(np.lexsort((rows.card, rows.t)))
        inside = (rows.t + midnight >= begin) & (rows.t + midnight < end)
        if not inside.all():
            rows = rows.take(np.flatnonzero(inside))
        yield from _dicts(world, rows, midnight, next_id)
        next_id += len(rows)


_SCENARIO_LABELS = np.array(("",) + SCENARIOS, dtype=object)
_CATEGORY_LABELS = np.array(CATEGORY_NAMES, dtype=object)
_CHANNEL_LABELS = np.array(CHANNELS, dtype=object)


def _dicts(world: World, rows: DayRows, midnight: int, first_id: int) -> Iterator[dict[str, Any]]:
    """Turn a day's columns into canonical dicts (columns converted in bulk, then zipped)."""
    cards, merchants = world.cards, world.merchants
    card, merchant = rows.card, rows.merchant
    stamps = np.datetime_as_string((rows.t + midnight).astype("datetime64[ms]"), unit="ms")
    columns = zip(
        range(first_id, first_id + len(rows)),
        stamps.tolist(),
        cards.ids[card].tolist(),
        merchants.ids[merchant].tolist(),
        rows.amount.tolist(),
        _CATEGORY_LABELS[merchants.category[merchant]].tolist(),
        _CHANNEL_LABELS[merchants.channel[merchant]].tolist(),
        merchants.country[merchant].tolist(),
        cards.lat[card].tolist(),
        cards.lon[card].tolist(),
        merchants.lat[merchant].tolist(),
        merchants.lon[merchant].tolist(),
        rows.device.tolist(),
        rows.ip.tolist(),
        (rows.scenario > 0).astype(np.int64).tolist(),
        _SCENARIO_LABELS[rows.scenario].tolist(),
        strict=True,
    )
    for (n, stamp, card_id, merchant_id, amount, category, channel, country,
         card_lat, card_lon, merchant_lat, merchant_lon, device, ip, fraud, scenario) in columns:
        yield {
            "transaction_id": f"tx-{n:012d}",
            "timestamp": stamp + "+00:00",
            "card_id": card_id,
            "merchant_id": merchant_id,
            "amount": amount,
            "currency": "USD",
            "merchant_category": category,
            "channel": channel,
            "country": country,
            "card_lat": card_lat,
            "card_lon": card_lon,
            "merchant_lat": merchant_lat,
            "merchant_lon": merchant_lon,
            "device_id": device,
            "ip": ip,
            "is_fraud": fraud,
            "scenario": scenario,
        }


def estimate_rows(config: GeneratorConfig) -> int:
    """Expected number of rows generate() yields (within a few percent), for progress bars.

    >>> cfg = GeneratorConfig(cards=300, days=5, seed=3)
    >>> abs(estimate_rows(cfg) - sum(1 for _ in generate(cfg))) < 0.05 * estimate_rows(cfg)
    True
    """
    world = _world(config.seed, config.cards, config.merchant_count)
    begin = _start_ms(config.start)
    end = begin + config.days * DAY_MS
    weekday_rows = float(world.cards.rate.sum())
    weekend_rows = float((world.cards.rate * world.cards.weekend).sum())
    total = 0.0
    for _, midnight in _days(config):
        covered = (min(end, midnight + DAY_MS) - max(begin, midnight)) / DAY_MS
        total += covered * (weekend_rows if _is_weekend(midnight) else weekday_rows)
    return round(total / (1.0 - config.fraud_rate))


def pace(rows: Iterable[dict[str, Any]], rate: float | None, *,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Pass rows through at `rate` per second (None: unthrottled), without drift.

    Row i is due at first_row_time + i / rate, so time lost to a slow consumer is caught up
    instead of accumulating.
    """
    if rate is None:
        return iter(rows)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of rows per second, got {rate}")
    return _paced(rows, 1.0 / rate, clock, sleep)


def _paced(rows: Iterable[dict[str, Any]], interval: float, clock: Callable[[], float],
           sleep: Callable[[float], None]) -> Iterator[dict[str, Any]]:
    origin: float | None = None
    for i, row in enumerate(rows):
        if origin is None:
            origin = clock()
        wait = origin + i * interval - clock()
        if wait > 0:
            sleep(wait)
        yield row


def live(config: GeneratorConfig, *, rate: float, start: str | None = None) -> Iterator[dict[str, Any]]:
    """The generated stream paced at `rate` rows per second, for the live demo.

    `start` overrides the config's first event time (e.g. now); timestamps stay synthetic
    event time and run faster or slower than the wall clock.
    """
    if start is not None:
        config = replace(config, start=start)
    return pace(generate(config), rate)
