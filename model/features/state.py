"""Per-card and per-merchant feature state: O(1) in size and update cost.

Windows are exponentially decayed counters in event time (time constant = window length), the
standard O(1) stand-in for sliding windows. Sets of recent merchants, categories and countries
are insertion-ordered dicts with a hard cap, evicting the least recently seen key.
"""

from __future__ import annotations

from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS

MAX_RECENT_MERCHANTS = 32
MAX_RECENT_CATEGORIES = 16
MAX_RECENT_COUNTRIES = 8
HOUR_BLOCKS = 6  # 4-hour blocks of the local day


class CardState:
    """What the pipeline remembers about one card; every field is bounded."""

    __slots__ = (
        "t", "seen", "c1h", "c1d", "c7d", "amount_1d",
        "n30", "amount_30", "log_30", "log_sq_30", "small_1h",
        "hour_blocks", "hour_ref", "last_lat", "last_lon", "last_loc_t",
        "merchants", "categories", "countries", "ids",
    )

    def __init__(self) -> None:
        self.t: int | None = None  # newest event time seen (ms)
        self.seen = 0  # transactions seen, capped when read
        self.c1h = self.c1d = self.c7d = 0.0
        self.amount_1d = 0.0
        self.n30 = self.amount_30 = self.log_30 = self.log_sq_30 = 0.0
        self.small_1h = 0.0
        # Hour blocks hold weights exp((t - hour_ref)/30d): shares need no per-event decay.
        self.hour_blocks = [0.0] * HOUR_BLOCKS
        self.hour_ref: int | None = None
        self.last_lat: float | None = None
        self.last_lon: float | None = None
        self.last_loc_t: int | None = None
        self.merchants: dict[str, None] = {}
        self.categories: dict[str, None] = {}
        self.countries: dict[str, None] = {}
        self.ids: dict[str, tuple[int, bytes]] = {}  # recent transaction ids: (event time, fingerprint); see ids.py

    def to_list(self) -> list[Any]:
        """A msgpack/JSON-friendly snapshot, restored by :meth:`from_list`."""
        return [
            self.t, self.seen, self.c1h, self.c1d, self.c7d, self.amount_1d,
            self.n30, self.amount_30, self.log_30, self.log_sq_30, self.small_1h,
            list(self.hour_blocks), self.hour_ref, self.last_lat, self.last_lon, self.last_loc_t,
            list(self.merchants), list(self.categories), list(self.countries),
            {key: list(value) for key, value in self.ids.items()},
        ]

    @classmethod
    def from_list(cls, values: list[Any]) -> CardState:
        state = cls()
        (state.t, state.seen, state.c1h, state.c1d, state.c7d, state.amount_1d,
         state.n30, state.amount_30, state.log_30, state.log_sq_30, state.small_1h,
         blocks, state.hour_ref, state.last_lat, state.last_lon, state.last_loc_t,
         merchants, categories, countries, *ids) = values  # snapshots before ids had 19 values
        state.hour_blocks = list(blocks)
        state.merchants = dict.fromkeys(merchants)
        state.categories = dict.fromkeys(categories)
        state.countries = dict.fromkeys(countries)
        state.ids = {key: (value[0], value[1]) for key, value in ids[0].items()} if ids else {}
        return state


class MerchantState:
    """What the pipeline remembers about one merchant: recent volume and amounts."""

    __slots__ = ("t", "c1h", "c1d", "c7d", "new_cards_1h", "n30", "amount_30")

    def __init__(self) -> None:
        self.t: int | None = None
        self.c1h = self.c1d = self.c7d = 0.0
        self.new_cards_1h = 0.0
        self.n30 = self.amount_30 = 0.0

    def to_list(self) -> list[Any]:
        """A msgpack/JSON-friendly snapshot, restored by :meth:`from_list`."""
        return [self.t, self.c1h, self.c1d, self.c7d, self.new_cards_1h, self.n30, self.amount_30]

    @classmethod
    def from_list(cls, values: list[Any]) -> MerchantState:
        state = cls()
        (state.t, state.c1h, state.c1d, state.c7d, state.new_cards_1h, state.n30, state.amount_30) = values
        return state


def remember(recent: dict[str, None], key: str, cap: int) -> bool:
    """Mark ``key`` as most recently seen; return True if it was not in ``recent`` before.

    >>> seen = {}
    >>> remember(seen, "a", 2), remember(seen, "b", 2), remember(seen, "a", 2), remember(seen, "c", 2)
    (True, True, False, True)
    >>> list(seen)
    ['a', 'c']
    """
    if key in recent:
        del recent[key]
        recent[key] = None
        return False
    if len(recent) >= cap:
        del recent[next(iter(recent))]
    recent[key] = None
    return True
