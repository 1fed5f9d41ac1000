"""The synthetic generator as a runner source: as fast as possible, or live at a given rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from fraudstream.model.schema import parse_timestamp
from fraudstream.services.sources.base import IDLE, SourceItem
from fraudstream.services.sources.files import RawRow
from fraudstream.services.sources.generator import GeneratorConfig, generate


class GeneratorSource:
    """Generator rows numbered from 1. With ``rate``, rows from event time ``pace_from`` on are paced.

    Pacing uses absolute deadlines (no drift) and yields :data:`IDLE` before sleeping. Rows skipped
    on a resume are regenerated (the generator is deterministic by seed) but never paced.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        rate: float | None = None,
        pace_from: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number, got {rate}")
        self.config, self.rate = config, rate
        self.pace_from_ms = parse_timestamp(pace_from)[0] if pace_from else None
        self._clock, self._sleep = clock, sleep

    @property
    def name(self) -> str:
        c = self.config
        return f"generator:cards={c.cards},days={c.days},seed={c.seed},start={c.start}"

    def rows(self, after: int = 0) -> Iterator[SourceItem]:
        interval = 1.0 / self.rate if self.rate else 0.0
        start: float | None = None
        paced = 0
        for position, data in enumerate(generate(self.config), start=1):
            if position <= after:
                continue
            if interval and (self.pace_from_ms is None or parse_timestamp(data["timestamp"])[0] >= self.pace_from_ms):
                if start is None:
                    start = self._clock()
                wait = start + paced * interval - self._clock()
                paced += 1
                if wait > 0:
                    yield IDLE
                    self._sleep(wait)
            yield RawRow(position, data, "")
