"""A Sparkov-like card simulator: cardholders with homes, merchants with categories, night fraud episodes.

Written from the published description of the Sparkov generator behind the Kaggle "Credit Card
Transactions Fraud Detection" set (no code copied). Cardholders have home coordinates, a city
population and a date of birth; each transaction is at a merchant of one of 14 categories placed
near the cardholder. Fraud: a cardholder chosen for fraud gets one episode of 1-2 days with 2-19
transactions, 80 % of them between 22:00 and 04:00, in categories and at amounts typical of
fraud (online shopping and misc online around $800-1,000, grocery around $300, small gas
purchases around $10).

Rows use Sparkov's column names and go through the ``sparkov`` column mapping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

DAY_S = 86_400
START = datetime(2026, 3, 1, tzinfo=UTC)

# category: (share of legitimate spending, median amount, log-sd)
CATEGORIES: dict[str, tuple[float, float, float]] = {
    "gas_transport": (0.11, 55.0, 0.5),
    "grocery_pos": (0.10, 100.0, 0.5),
    "home": (0.09, 45.0, 0.9),
    "shopping_pos": (0.09, 40.0, 1.0),
    "kids_pets": (0.09, 45.0, 0.9),
    "shopping_net": (0.08, 40.0, 1.0),
    "entertainment": (0.07, 45.0, 0.9),
    "food_dining": (0.07, 35.0, 0.9),
    "personal_care": (0.07, 30.0, 0.9),
    "health_fitness": (0.07, 40.0, 0.8),
    "misc_pos": (0.06, 40.0, 1.0),
    "misc_net": (0.05, 35.0, 1.0),
    "grocery_net": (0.03, 50.0, 0.6),
    "travel": (0.02, 90.0, 1.4),
}
# category: (share of fraudulent rows, mean amount, sd)
FRAUD_CATEGORIES: dict[str, tuple[float, float, float]] = {
    "shopping_net": (0.22, 1_000.0, 150.0),
    "grocery_pos": (0.24, 310.0, 40.0),
    "misc_net": (0.13, 800.0, 120.0),
    "shopping_pos": (0.10, 880.0, 150.0),
    "gas_transport": (0.16, 12.0, 4.0),
    "personal_care": (0.05, 25.0, 8.0),
    "health_fitness": (0.03, 20.0, 6.0),
    "home": (0.04, 250.0, 40.0),
    "kids_pets": (0.03, 20.0, 5.0),
}


def _luhn_card(rng: np.random.Generator) -> str:
    digits = [4] + [int(d) for d in rng.integers(0, 10, 14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def rows(*, customers: int = 1_200, merchants_per_category: int = 50, days: int = 60,
         fraud_rate: float = 0.006, seed: int = 13) -> list[dict[str, Any]]:
    """Transactions as Sparkov rows (trans_date_trans_time, cc_num, merchant, category, amt, lat, long, ...)."""
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    share = np.array([CATEGORIES[c][0] for c in names])
    share /= share.sum()
    home = np.c_[rng.uniform(27, 47, customers), rng.uniform(-122, -72, customers)]
    city_pop = np.round(np.exp(rng.normal(8.5, 2.0, customers))).astype(np.int64) + 20
    born = rng.integers(1940, 2004, customers)
    cards = [_luhn_card(rng) for _ in range(customers)]
    rate = np.exp(rng.normal(np.log(2.0), 0.6, customers))  # transactions a day
    night_owl = rng.uniform(0, 0.15, customers)  # share of a cardholder's spending at night
    # Each cardholder has a taste over categories and uses a few merchants per category.
    taste = rng.dirichlet(share * 20, customers)
    merchant_names = {c: [f"fraud_{c}_{i:03d}" for i in range(merchants_per_category)] for c in names}

    rec: list[tuple[int, int, int, int, float, int]] = []  # t, customer, category, merchant, amount, fraud
    for c in range(customers):
        n = rng.poisson(rate[c] * days)
        t_day = rng.integers(0, days, n)
        night = rng.random(n) < night_owl[c]
        hour = np.where(night, rng.uniform(22, 28, n) % 24, rng.uniform(7, 22, n))
        t = t_day * DAY_S + (hour * 3600).astype(np.int64)
        cat = rng.choice(len(names), n, p=taste[c])
        favourites = rng.integers(0, merchants_per_category, (len(names), 4))
        merch = favourites[cat, rng.integers(0, 4, n)]
        med = np.array([CATEGORIES[names[k]][1] for k in cat])
        sd = np.array([CATEGORIES[names[k]][2] for k in cat])
        amt = np.round(med * np.exp(rng.normal(0, sd)), 2) + 1.0
        rec.extend(zip(t.tolist(), [c] * n, cat.tolist(), merch.tolist(), amt.tolist(), [0] * n))

    fraud_names = list(FRAUD_CATEGORIES)
    fshare = np.array([FRAUD_CATEGORIES[c][0] for c in fraud_names])
    fshare /= fshare.sum()
    target = fraud_rate * len(rec)
    made = 0
    victims = rng.permutation(customers)
    for c in victims:
        if made >= target:
            break
        k = int(rng.integers(2, 20))
        start = int(rng.integers(0, days - 1))
        span = int(rng.integers(1, 3))
        t_day = start + rng.integers(0, span, k)
        night = rng.random(k) < 0.8
        hour = np.where(night, rng.uniform(22, 28, k) % 24, rng.uniform(4, 22, k))
        t = t_day * DAY_S + (hour * 3600).astype(np.int64)
        fc = rng.choice(len(fraud_names), k, p=fshare)
        for j in range(k):
            cname = fraud_names[fc[j]]
            _, mean, sd = FRAUD_CATEGORIES[cname]
            amount = round(max(1.0, rng.normal(mean, sd)), 2)
            rec.append((int(t[j]), int(c), names.index(cname), int(rng.integers(0, merchants_per_category)), amount, 1))
        made += k

    rec.sort(key=lambda r: (r[0], r[1]))
    out = []
    for i, (t, c, k, m, amount, fraud) in enumerate(rec):
        when = START + timedelta(seconds=int(t))
        cname = names[k]
        mlat = home[c, 0] + rng.uniform(-1, 1)
        mlon = home[c, 1] + rng.uniform(-1, 1)
        out.append({
            "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"),
            "cc_num": cards[c],
            "merchant": merchant_names[cname][m],
            "category": cname,
            "amt": amount,
            "lat": round(float(home[c, 0]), 4),
            "long": round(float(home[c, 1]), 4),
            "city_pop": int(city_pop[c]),
            "dob": f"{born[c]}-06-15",
            "trans_num": f"{seed:02d}{i:010d}",
            "unix_time": int(when.timestamp()),
            "merch_lat": round(float(mlat), 6),
            "merch_long": round(float(mlon), 6),
            "is_fraud": fraud,
            "scenario": ("episode_large" if amount >= 200 else "episode_small") if fraud else "",
        })
    return out
