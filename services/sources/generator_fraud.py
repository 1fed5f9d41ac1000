"""Fraud scenarios injected into a simulated day, interleaved with the cards' normal activity.

Each scenario writes a small incident (a few rows) whose signature is behavioural: unusual for
that card or merchant, not for the population as a whole. A per-scenario budget keeps the share
of fraudulent rows near the configured rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fraudstream.services.sources.generator_day import DAY_MS, HOUR_MS, MEDIAN, DayRows, Trips
from fraudstream.services.sources.generator_world import (
    ATM_CH,
    CARD_PRESENT,
    CAT,
    N_CAT,
    ONLINE_CH,
    World,
    device_ids,
    ip_addresses,
)

MINUTE_MS = 60_000

SCENARIOS: tuple[str, ...] = (
    "high_amount",
    "night_spree",
    "impossible_travel",
    "compromised_merchant",
    "card_testing",
)
# Share of fraudulent rows per scenario (same order as SCENARIOS).
SCENARIO_SHARE = np.array([0.18, 0.20, 0.18, 0.20, 0.24])


@dataclass
class Incident:
    """Rows of one fraud incident, as plain lists (incidents are small)."""

    t: list[int]
    card: list[int]
    merchant: list[int]
    amount: list[float]
    device: list[str | None]
    ip: list[str | None]

    @staticmethod
    def empty() -> Incident:
        return Incident([], [], [], [], [], [])

    def add(self, t: int, card: int, merchant: int, amount: float,
            device: str | None = None, ip: str | None = None) -> None:
        self.t.append(int(t))
        self.card.append(int(card))
        self.merchant.append(int(merchant))
        self.amount.append(round(max(0.5, float(amount)), 2))
        self.device.append(device)
        self.ip.append(ip)


@dataclass
class Day:
    """What a scenario may look at: the world, today's legitimate rows, who is travelling."""

    world: World
    rng: np.random.Generator
    legit: DayRows
    trips: Trips

    def fresh_identity(self) -> tuple[str, str]:
        """A device and IP address the card has never used (the fraudster's)."""
        return device_ids(self.rng, 1)[0], ip_addresses(self.rng, 1)[0]

    def identity_if_online(self, merchant: int, ident: tuple[str, str]) -> tuple[str | None, str | None]:
        if self.world.merchants.channel[merchant] == ONLINE_CH:
            return ident
        return None, None

    def online_merchant(self, categories: tuple[str, ...]) -> int:
        cat = np.array([CAT[self.rng.choice(categories)]])
        m = int(self.world.merchants.online(cat, self.rng.random(1))[0])
        if m < 0:
            m = int(self.world.merchants.online(np.array([CAT["online_retail"]]), self.rng.random(1))[0])
        return m

    def shop_near_home(self, card: int, category: str) -> int:
        """A shop of the category in the card's home city; -1 if there is none."""
        merchants = self.world.merchants
        key = np.array([int(self.world.cards.home_city[card]) * N_CAT + CAT[category]])
        return int(merchants.in_group(merchants.by_city_cat, merchants.city_cat_keys, key,
                                      self.rng.random(1))[0])


def _high_amount(day: Day, size: int) -> Incident:
    """A few purchases far above the card's habit, in goods that are easy to resell."""
    rng, cards = day.rng, day.world.cards
    inc = Incident.empty()
    card = int(rng.integers(len(cards.ids)))
    ident = day.fresh_identity()
    t = int(rng.integers(6 * HOUR_MS, DAY_MS - size * 90 * MINUTE_MS))
    for _ in range(size):
        category = str(rng.choice(("electronics", "jewelry", "online_retail")))
        if category != "jewelry" and rng.random() < 0.65:
            m = day.online_merchant((category,))
        else:
            m = day.shop_near_home(card, category)
        if m < 0:
            m = day.online_merchant((category if category != "jewelry" else "online_retail",))
        amount = cards.typical[card] * rng.uniform(8.0, 25.0)
        inc.add(t, card, m, amount, *day.identity_if_online(m, ident))
        t += int(rng.integers(2 * MINUTE_MS, 90 * MINUTE_MS))
    return inc


def _night_spree(day: Day, size: int) -> Incident:
    """A burst between 1 and 5 am in categories the card never uses."""
    rng, cards, merchants = day.rng, day.world.cards, day.world.merchants
    inc = Incident.empty()
    for _ in range(20):  # find a card that has categories it never uses
        card = int(rng.integers(len(cards.ids)))
        unused = np.flatnonzero(cards.prefs[card] == 0.0)
        if len(unused):
            break
    else:
        return inc
    home = np.full(len(unused), cards.home_city[card], dtype=np.int64)
    u = rng.random(len(unused))
    shops = merchants.in_group(merchants.by_city_cat, merchants.city_cat_keys,
                               home * N_CAT + unused, u)
    webs = merchants.online(unused, u)
    options = np.concatenate([shops[shops >= 0], webs[webs >= 0]])
    if not len(options):
        return inc
    ident = day.fresh_identity()
    t = int(rng.integers(1 * HOUR_MS, 3 * HOUR_MS))
    for _ in range(size):
        if t >= 5 * HOUR_MS:
            break
        m = int(rng.choice(options))
        amount = MEDIAN[merchants.category[m]] * cards.spend[card] * rng.uniform(1.0, 4.0)
        inc.add(t, card, m, amount, *day.identity_if_online(m, ident))
        t += int(rng.integers(3 * MINUTE_MS, 25 * MINUTE_MS))
    return inc


def _impossible_travel(day: Day, size: int) -> Incident:
    """In-person purchases on another continent minutes after the card was used at home."""
    rng, world, legit = day.rng, day.world, day.legit
    inc = Incident.empty()
    far = world.far_shops
    if not len(far) or not len(legit):
        return inc
    at_home = day.trips.city[legit.card] < 0
    in_person = world.merchants.channel[legit.merchant] == CARD_PRESENT
    daytime = (legit.t >= 6 * HOUR_MS) & (legit.t < 21 * HOUR_MS)
    anchors = np.flatnonzero(at_home & in_person & daytime)
    if not len(anchors):
        return inc
    a = int(rng.choice(anchors))
    card = int(legit.card[a])
    m = int(rng.choice(far))
    t = int(legit.t[a]) + int(rng.integers(5 * MINUTE_MS, 60 * MINUTE_MS))
    for _ in range(size):
        amount = world.cards.typical[card] * rng.uniform(1.5, 6.0)
        inc.add(t, card, m, amount)
        t += int(rng.integers(3 * MINUTE_MS, 30 * MINUTE_MS))
    return inc


def _compromised_merchant(day: Day, size: int) -> Incident:
    """One merchant charges many cards that never shopped there, within an hour or three."""
    rng, world = day.rng, day.world
    merchants, cards = world.merchants, world.cards
    inc = Incident.empty()
    domestic_shops = np.flatnonzero((merchants.channel == CARD_PRESENT)
                                    & (merchants.city < world.cities.n_us))
    online = np.flatnonzero(merchants.channel == ONLINE_CH)
    pool = online if rng.random() < 0.6 or not len(domestic_shops) else domestic_shops
    m = int(rng.choice(pool))
    n_cards = len(cards.ids)
    candidates = rng.choice(n_cards, size=min(n_cards, 3 * size), replace=False)
    chosen = []
    for c in candidates.tolist():
        regular = (cards.fav_shop[c] == m).any() or (cards.fav_online[c] == m).any()
        if not regular and c * len(merchants.ids) + m not in day.trips.visited:
            chosen.append(c)
            if len(chosen) == size:
                break
    if len(chosen) < 2:
        return inc
    duration = int(rng.integers(30 * MINUTE_MS, 180 * MINUTE_MS))
    start = int(rng.integers(0, DAY_MS - duration))
    times = np.sort(rng.integers(start, start + duration, len(chosen)))
    # A handful of fraudster devices serve the whole run.
    idents = [day.fresh_identity() for _ in range(int(rng.integers(1, 4)))]
    median = MEDIAN[merchants.category[m]]
    for t, c in zip(times.tolist(), chosen, strict=True):
        ident = idents[int(rng.integers(len(idents)))]
        inc.add(t, c, m, median * rng.uniform(0.7, 2.5), *day.identity_if_online(m, ident))
    return inc


def _card_testing(day: Day, size: int) -> Incident:
    """Tiny online charges seconds apart to check that a stolen card works, then maybe a real one."""
    rng, cards = day.rng, day.world.cards
    inc = Incident.empty()
    card = int(rng.integers(len(cards.ids)))
    testers = [day.online_merchant(("digital_goods", "entertainment", "online_retail"))
               for _ in range(int(rng.integers(1, 3)))]
    ident = day.fresh_identity()
    follow_up = size > 1 and rng.random() < 0.4
    tiny = size - 1 if follow_up else size
    t = int(rng.integers(0, DAY_MS - 2 * HOUR_MS))
    for _ in range(tiny):
        inc.add(t, card, testers[int(rng.integers(len(testers)))],
                rng.uniform(0.5, 3.0), *ident)
        t += int(np.clip(rng.exponential(25_000), 2_000, 240_000))
    if follow_up:
        t += int(rng.integers(1 * MINUTE_MS, 20 * MINUTE_MS))
        m = day.online_merchant(("online_retail", "electronics"))
        inc.add(t, card, m, cards.typical[card] * rng.uniform(3.0, 10.0), *ident)
    return inc


_SIZE: dict[str, Callable[[np.random.Generator], int]] = {
    "high_amount": lambda rng: int(rng.integers(1, 4)),
    "night_spree": lambda rng: int(rng.integers(3, 8)),
    "impossible_travel": lambda rng: int(rng.integers(1, 3)),
    "compromised_merchant": lambda rng: int(rng.integers(8, 31)),
    "card_testing": lambda rng: int(rng.integers(5, 18)),
}
_MAKE: dict[str, Callable[[Day, int], Incident]] = {
    "high_amount": _high_amount,
    "night_spree": _night_spree,
    "impossible_travel": _impossible_travel,
    "compromised_merchant": _compromised_merchant,
    "card_testing": _card_testing,
}


@dataclass
class FraudBudget:
    """Fraudulent rows still owed per scenario, and the size of each one's next incident."""

    owed: np.ndarray
    next_size: list[int]

    @staticmethod
    def start(rng: np.random.Generator) -> FraudBudget:
        return FraudBudget(np.zeros(len(SCENARIOS)), [_SIZE[s](rng) for s in SCENARIOS])


def fraud_day(day: Day, budget: FraudBudget, fraud_rate: float) -> DayRows:
    """Incidents for one day, sized so fraud is about `fraud_rate` of all rows over time."""
    budget.owed += len(day.legit) * fraud_rate / (1.0 - fraud_rate) * SCENARIO_SHARE
    incidents: list[tuple[int, Incident]] = []
    for k, name in enumerate(SCENARIOS):
        # An incident is made once half its rows are owed, so the running total stays close.
        while budget.owed[k] >= budget.next_size[k] / 2:
            inc = _MAKE[name](day, budget.next_size[k])
            budget.next_size[k] = _SIZE[name](day.rng)
            if not inc.t:
                break  # nothing suitable today; the debt carries over
            budget.owed[k] -= len(inc.t)
            incidents.append((k + 1, inc))
    if not incidents:
        return DayRows(*(np.zeros(0, dtype=d) for d in
                         (np.int64, np.int64, np.int64, np.float64, object, object, np.int8)))
    t: list[int] = []
    card: list[int] = []
    merchant: list[int] = []
    amount: list[float] = []
    device: list[str | None] = []
    ip: list[str | None] = []
    scenario: list[int] = []
    for code, inc in incidents:
        t += inc.t
        card += inc.card
        merchant += inc.merchant
        amount += inc.amount
        device += inc.device
        ip += inc.ip
        scenario += [code] * len(inc.t)
    dev = np.empty(len(t), dtype=object)
    dev[:] = device
    addr = np.empty(len(t), dtype=object)
    addr[:] = ip
    merchant_arr = np.array(merchant, dtype=np.int64)
    amount_arr = np.array(amount)
    # Cash machines pay out in twenties, for fraudsters too.
    atm = day.world.merchants.channel[merchant_arr] == ATM_CH
    amount_arr[atm] = np.maximum(20.0, np.round(amount_arr[atm] / 20.0) * 20.0)
    return DayRows(np.array(t, dtype=np.int64), np.array(card, dtype=np.int64),
                   merchant_arr, amount_arr, dev, addr, np.array(scenario, dtype=np.int8))
