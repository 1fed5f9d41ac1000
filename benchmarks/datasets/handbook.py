"""A handbook-like card simulator: five columns only, and the three published fraud mechanisms.

Written from the published description of the Fraud Detection Handbook's simulator (no code
copied): customers and terminals on a 100 x 100 grid, each customer uses the terminals within a
radius of its home; amounts around a per-customer mean; transactions around midday. Fraud:

- ``high_amount``: any amount above 220 is fraud;
- ``compromised_terminal``: each day some terminals are compromised for the next 28 days and
  every transaction there is fraud (nothing in the row shows it: only the terminal's id);
- ``compromised_customer``: each day some customers are compromised for the next 14 days and a
  third of their transactions are fraud at 5x their amount.

Rows use the handbook's column names and go through the ``handbook`` column mapping, as a user's
file would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

DAY_S = 86_400
START = datetime(2026, 4, 1, tzinfo=UTC)


def rows(
    *, customers: int = 5_000, terminals: int = 10_000, days: int = 30, seed: int = 11,
    terminals_per_day: int = 2, customers_per_day: int = 3,
) -> list[dict[str, Any]]:
    """Transactions as handbook rows (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD, ...)."""
    rng = np.random.default_rng(seed)
    cxy = rng.uniform(0, 100, (customers, 2))
    mean_amount = rng.uniform(5, 100, customers)
    std_amount = mean_amount / 2
    rate = rng.uniform(0, 4, customers)
    txy = rng.uniform(0, 100, (terminals, 2))
    # Terminals within radius 5 of each customer (a grid search would be faster; this is small).
    near: list[np.ndarray] = []
    for c in range(customers):
        d2 = ((txy - cxy[c]) ** 2).sum(axis=1)
        near.append(np.flatnonzero(d2 < 25.0))

    cust, term, t, amount = [], [], [], []
    for day in range(days):
        n = rng.poisson(rate)
        for c in np.flatnonzero(n):
            if near[c].size == 0:
                continue
            k = int(n[c])
            secs = rng.normal(DAY_S / 2, 20_000, k)
            keep = (secs > 0) & (secs < DAY_S)
            k = int(keep.sum())
            if k == 0:
                continue
            a = rng.normal(mean_amount[c], std_amount[c], k)
            neg = a < 0
            a[neg] = rng.uniform(0, 2 * mean_amount[c], int(neg.sum()))
            cust.append(np.full(k, c))
            term.append(rng.choice(near[c], k))
            t.append(day * DAY_S + secs[keep].astype(np.int64))
            amount.append(np.maximum(np.round(a, 2), 0.01))  # the contract refuses a zero amount
    cust_a, term_a, t_a, amt = (np.concatenate(x) for x in (cust, term, t, amount))
    order = np.lexsort((cust_a, t_a))
    cust_a, term_a, t_a, amt = cust_a[order], term_a[order], t_a[order], amt[order]
    day_a = t_a // DAY_S
    scenario = np.zeros(len(t_a), dtype=np.int64)

    scenario[amt > 220] = 1
    for day in range(days):
        for terminal in rng.choice(terminals, terminals_per_day, replace=False):
            hit = (term_a == terminal) & (day_a >= day) & (day_a < day + 28) & (scenario == 0)
            scenario[hit] = 2
        for c in rng.choice(customers, customers_per_day, replace=False):
            window = np.flatnonzero((cust_a == c) & (day_a >= day) & (day_a < day + 14) & (scenario == 0))
            if window.size:
                chosen = rng.choice(window, window.size // 3, replace=False)
                amt[chosen] = np.round(amt[chosen] * 5, 2)
                scenario[chosen] = 3
    names = ("", "high_amount", "compromised_terminal", "compromised_customer")
    out = []
    for i in range(len(t_a)):
        when = START + timedelta(seconds=int(t_a[i]))
        out.append({
            "TRANSACTION_ID": str(i),
            "TX_DATETIME": when.strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": str(int(cust_a[i])),
            "TERMINAL_ID": str(int(term_a[i])),
            "TX_AMOUNT": float(amt[i]),
            "TX_TIME_SECONDS": int(t_a[i]),
            "TX_TIME_DAYS": int(day_a[i]),
            "TX_FRAUD": int(scenario[i] > 0),
            "TX_FRAUD_SCENARIO": int(scenario[i]),
            "scenario": names[scenario[i]],
        })
    return out
