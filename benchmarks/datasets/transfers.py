"""A PaySim-like account simulator: payments, transfers and cash-outs, where fraud drains balances.

Written from the published description of PaySim (no code copied). Accounts hold a balance and
make payments to merchants, cash-ins and cash-outs at agents, transfers to their usual payees and
debits. Legitimate transfers and cash-outs move a share of the balance (sometimes all of it), so
amounts alone do not spike. Fraud is an account takeover at any hour: a TRANSFER of the whole
balance to a fresh mule account (``takeover_transfer``), then, minutes later, a CASH_OUT of it by
the mule at an agent (``mule_cash_out``); the victim's account goes quiet. New legitimate
accounts open every day too, so "new account" alone is not fraud.

Rows are canonical (no public layout to imitate); balances travel as extra fields
(``oldbalanceOrg``, ``newbalanceOrig``), which today's feature step does not read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DAY_MS = 86_400_000
MINUTE_MS = 60_000
START_MS = 1_775_001_600_000  # 2026-04-01T00:00:00Z

TYPES = ("PAYMENT", "CASH_IN", "CASH_OUT", "TRANSFER", "DEBIT")
TYPE_SHARE = np.array([0.45, 0.20, 0.18, 0.12, 0.05])


def rows(*, accounts: int = 5_000, merchants: int = 600, agents: int = 120, days: int = 30,
         fraud_rate: float = 0.004, seed: int = 17) -> list[dict[str, Any]]:
    """Canonical rows (card_id = paying account, merchant_id = payee) with balances as extras."""
    rng = np.random.default_rng(seed)
    opened = np.where(rng.random(accounts) < 0.15, rng.integers(1, days, accounts), 0)
    rate = np.exp(rng.normal(np.log(1.2), 0.6, accounts))
    salary = np.exp(rng.normal(np.log(1_500), 0.8, accounts))  # size of a typical deposit
    payees = rng.integers(0, accounts, (accounts, 4))
    n_victims = int(round(fraud_rate * rate.sum() * days / 2))
    victims = rng.choice(accounts, n_victims, replace=False)
    takeover_day = dict(zip(victims.tolist(), rng.integers(1, days, n_victims).tolist()))

    recs: list[tuple[int, str, str, float, str, float, float, int, str]] = []
    mule = 0
    for a in range(accounts):
        balance = salary[a] * rng.uniform(0.5, 3.0)
        n = rng.poisson(rate[a] * (days - opened[a]))
        t = np.sort(opened[a] * DAY_MS + rng.integers(0, (days - opened[a]) * DAY_MS // MINUTE_MS, n) * MINUTE_MS)
        # Daytime habit: move each event to a time of day around early afternoon.
        tod = np.clip(rng.normal(13.5, 3.5, n), 6, 23.5) * 3_600_000
        t = np.sort(t - t % DAY_MS + tod.astype(np.int64))
        kinds = rng.choice(len(TYPES), n, p=TYPE_SHARE)
        if opened[a] and n:
            kinds[0] = 1  # a new account starts with a deposit
        stop = takeover_day.get(a)
        for ti, k in zip(t.tolist(), kinds.tolist()):
            if stop is not None and ti >= stop * DAY_MS:
                break
            kind = TYPES[k]
            if kind == "PAYMENT":
                amount, payee = np.exp(rng.normal(np.log(35), 0.9)), f"M{rng.integers(0, merchants):05d}"
            elif kind == "DEBIT":
                amount, payee = np.exp(rng.normal(np.log(60), 0.7)), f"B{rng.integers(0, 20):03d}"
            elif kind == "CASH_IN":
                amount, payee = salary[a] * rng.uniform(0.3, 1.2), f"A{rng.integers(0, agents):04d}"
            elif kind == "CASH_OUT":
                share = 1.0 if rng.random() < 0.05 else rng.beta(2, 4)
                amount, payee = balance * share, f"A{rng.integers(0, agents):04d}"
            else:
                share = 1.0 if rng.random() < 0.03 else rng.beta(2, 5)
                amount, payee = balance * share, f"C{payees[a, rng.integers(0, 4)]:07d}"
            amount = round(max(1.0, float(amount)), 2)
            old = balance
            balance = balance + amount if kind == "CASH_IN" else max(0.0, balance - amount)
            recs.append((ti, f"C{a:07d}", payee, amount, kind, round(float(old), 2), round(float(balance), 2), 0, ""))
        if stop is not None and balance > 1.0:
            ti = stop * DAY_MS + int(rng.integers(0, DAY_MS // MINUTE_MS)) * MINUTE_MS
            name = f"C{accounts + mule:07d}"
            mule += 1
            amount = round(float(balance), 2)
            recs.append((ti, f"C{a:07d}", name, amount, "TRANSFER", amount, 0.0, 1, "takeover_transfer"))
            later = ti + int(rng.integers(2, 120)) * MINUTE_MS
            recs.append((later, name, f"A{rng.integers(0, agents):04d}", amount, "CASH_OUT", amount, 0.0, 1, "mule_cash_out"))

    recs.sort(key=lambda r: (r[0], r[1]))
    return [
        {
            "transaction_id": f"pt-{i:010d}",
            "timestamp": START_MS + t,
            "card_id": account,
            "merchant_id": payee,
            "amount": amount,
            "merchant_category": kind,
            "is_fraud": fraud,
            "oldbalanceOrg": old,
            "newbalanceOrig": new,
            "scenario": scenario,
        }
        for i, (t, account, payee, amount, kind, old, new, fraud, scenario) in enumerate(recs)
    ]
