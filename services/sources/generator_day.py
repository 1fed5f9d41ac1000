"""One simulated day of legitimate card activity, drawn in bulk with numpy.

Each card makes a Poisson number of purchases, at hours that follow a daily rhythm, in
categories it likes, mostly at its favourite merchants near home; some cards are away on a trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fraudstream.services.sources.generator_world import (
    ATM_CH,
    CAT,
    CATEGORIES,
    CATEGORY_HOUR,
    CATEGORY_WEEKEND,
    FAV_SLOT_CDF,
    HOUR_CDF,
    N_CAT,
    ONLINE_CH,
    World,
    device_ids,
    ip_addresses,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

MEDIAN = np.array([c[2] for c in CATEGORIES])
SPREAD = np.array([c[3] for c in CATEGORIES])
_HOUR_FLAT = (HOUR_CDF + np.arange(len(HOUR_CDF))[:, None]).ravel()

TRIP_CHANCE = 0.01  # per card per day
FOREIGN_TRIP_SHARE = 0.15
SPLURGE_CHANCE = 0.004  # a legitimate purchase far above the card's habit


@dataclass
class DayRows:
    """A day's transactions as columns; `t` is milliseconds since the day's midnight."""

    t: np.ndarray
    card: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray
    device: np.ndarray  # object: str or None
    ip: np.ndarray  # object: str or None
    scenario: np.ndarray  # int8: 0 legitimate, else 1 + index into SCENARIOS

    @staticmethod
    def concat(parts: list[DayRows]) -> DayRows:
        return DayRows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def take(self, index: np.ndarray) -> DayRows:
        return DayRows(*(getattr(self, f)[index] for f in _FIELDS))

    def __len__(self) -> int:
        return len(self.t)


_FIELDS = ("t", "card", "merchant", "amount", "device", "ip", "scenario")


@dataclass
class Trips:
    """Where each card is travelling (-1: at home) and for how many more days."""

    city: np.ndarray
    days_left: np.ndarray
    # card * n_merchants + merchant for merchants visited on trips (not favourites).
    visited: set[int] = field(default_factory=set)

    @staticmethod
    def at_home(n_cards: int) -> Trips:
        return Trips(np.full(n_cards, -1, dtype=np.int64), np.zeros(n_cards, dtype=np.int64))


def advance_trips(world: World, rng: np.random.Generator, trips: Trips) -> None:
    """End finished trips and start new ones (a few days in another US city, or abroad)."""
    cards = world.cards
    n = len(cards.ids)
    trips.days_left -= 1
    trips.city[trips.days_left <= 0] = -1
    leaving = (trips.city < 0) & (rng.random(n) < TRIP_CHANCE)
    abroad = rng.random(n) < FOREIGN_TRIP_SHARE
    active = world.active_us
    w = world.cities.weight[active] / world.cities.weight[active].sum()
    dest = rng.choice(active, size=n, p=w)
    if len(world.foreign_with_shops):
        dest = np.where(abroad, rng.choice(world.foreign_with_shops, size=n), dest)
    leaving &= dest != cards.home_city
    days = np.where(abroad, rng.integers(4, 13, n), rng.integers(2, 7, n))
    trips.city[leaving] = dest[leaving]
    trips.days_left[leaving] = days[leaving]


def legit_day(world: World, rng: np.random.Generator, trips: Trips, weekend: bool) -> DayRows:
    """Draw all legitimate transactions of one day (unsorted)."""
    cards, merchants = world.cards, world.merchants
    lam = cards.rate * (cards.weekend if weekend else 1.0)
    card = np.repeat(np.arange(len(cards.ids), dtype=np.int64), rng.poisson(lam))
    n = len(card)

    profile = 2 * cards.night_owl[card].astype(np.int64) + int(weekend)
    hour = np.searchsorted(_HOUR_FLAT, rng.random(n) + profile, side="right") - 24 * profile
    hour = np.clip(hour, 0, 23)
    t = hour * HOUR_MS + rng.integers(0, HOUR_MS, n)

    # Category: the card's preferences, reshaped by the hour (shops close at night) and weekday.
    w = cards.prefs[card] * CATEGORY_HOUR[:, hour].T
    if weekend:
        w *= CATEGORY_WEEKEND
    cum = np.cumsum(w, axis=1)
    cat = np.minimum((cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1), N_CAT - 1)

    slot = np.minimum(np.searchsorted(FAV_SLOT_CDF, rng.random(n), side="right"), 2)
    shop = cards.fav_shop[card, cat, slot]
    web = cards.fav_online[card, cat, slot]
    want_web = rng.random(n) < cards.online_share[card]
    merchant = np.where(shop < 0, web, np.where((web >= 0) & want_web, web, shop)).astype(np.int64)

    # Travellers buy in person where they are; if nothing of the category is there, they buy
    # online from a favourite store instead (never from a category they do not use).
    away = (trips.city[card] >= 0) & (merchants.channel[merchant] != ONLINE_CH)
    if away.any():
        idx = np.flatnonzero(away)
        there = merchants.in_group(merchants.by_city_cat, merchants.city_cat_keys,
                                   trips.city[card[idx]] * N_CAT + cat[idx], rng.random(len(idx)))
        fallback = cards.fav_online[card[idx], CAT["online_retail"], 0]
        merchant[idx] = np.where(there >= 0, there, fallback)
        found = there >= 0
        trips.visited.update((card[idx][found] * len(merchants.ids) + there[found]).tolist())
    keep = merchant >= 0
    if not keep.all():
        card, t, merchant = card[keep], t[keep], merchant[keep]
        n = len(card)

    cat = merchants.category[merchant]
    amount = MEDIAN[cat] * cards.spend[card] * np.exp(SPREAD[cat] * rng.standard_normal(n))
    splurge = rng.random(n) < SPLURGE_CHANCE
    amount[splurge] *= rng.uniform(3.0, 12.0, int(splurge.sum()))
    atm = merchants.channel[merchant] == ATM_CH
    amount = np.where(atm, np.maximum(20.0, np.round(amount / 20.0) * 20.0),
                      np.maximum(0.5, np.round(amount, 2)))

    device = np.full(n, None, dtype=object)
    ip = np.full(n, None, dtype=object)
    web_rows = np.flatnonzero(merchants.channel[merchant] == ONLINE_CH)
    if len(web_rows):
        k = len(web_rows)
        owner = card[web_rows]
        device[web_rows] = cards.devices[owner, rng.integers(0, 2, k)]
        ip[web_rows] = cards.home_ip[owner]
        # People sometimes get a new phone or shop over mobile data.
        new_dev = web_rows[rng.random(k) < 0.03]
        device[new_dev] = device_ids(rng, len(new_dev))
        mobile = web_rows[rng.random(k) < 0.15]
        ip[mobile] = ip_addresses(rng, len(mobile))
    return DayRows(t, card, merchant, amount, device, ip, np.zeros(n, dtype=np.int8))
