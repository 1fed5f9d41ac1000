"""Reason codes: the features that pushed a score up, said in an analyst's words.

The forest credits each feature that isolated the transaction quickly; among those, only values
that are unusual in the suspicious direction (compared with the training distribution) are worth
saying. Each feature has one sentence template that shows the evidence, not the feature name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from math import exp, expm1, log
from typing import TYPE_CHECKING

import numpy as np

from fraudstream.model.features.step import FEATURE_NAMES, INDEX, MAX_SPEED_KMH, SMALL_AMOUNT

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

Stats = Mapping[str, Mapping[str, float]]  # feature -> {"p05": .., "p50": .., "p95": .., "p99": ..}

# Features where a *low* value is the suspicious one; every other feature is suspicious when high.
LOW_IS_SUSPICIOUS = frozenset({"card_hour_share", "seconds_since_prev_log", "card_history_log"})
NEVER_A_REASON = frozenset({"day_of_week"})
# Below these, a value may be in the training tail yet not worth an analyst's attention
# ("about 0 small amounts", "z = 1.2"); natural units of each feature.
WORTH_SAYING: dict[str, float] = {
    "amount_ratio_30d_log": log(3.0),
    "amount_zscore_30d": 3.0,
    "card_count_1h": 2.5,
    "card_count_1d": 8.0,
    "card_count_7d": 30.0,
    "card_small_count_1h": 1.5,
    "distance_home_km": 150.0,
    "distance_prev_km": 150.0,
    "speed_prev_kmh": 900.0,
    "merchant_count_1h": 5.0,
    "merchant_new_cards_1h": 2.5,
    "merchant_velocity_ratio": log(3.0),
    "merchant_amount_ratio_log": log(3.0),
}
THIN_HISTORY_TXNS = 5  # a card with fewer earlier transactions has no usual behaviour to compare against yet
THIN_HISTORY = "thin history"  # how that alert's marker reason begins (the dashboard flags alerts by it)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def money(amount: float, currency: str = "USD") -> str:
    """``$1,234.50`` for USD, ``1,234.50 EUR`` otherwise.

    >>> money(1234.5), money(3, "EUR")
    ('$1,234.50', '3.00 EUR')
    """
    return f"${amount:,.2f}" if currency == "USD" else f"{amount:,.2f} {currency}"


def duration(seconds: float) -> str:
    """A short human duration.

    >>> duration(12), duration(1200), duration(7200), duration(200000)
    ('12 seconds', '20 minutes', '2.0 hours', '2.3 days')
    """
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def _clock(hour: float) -> str:
    minutes = int(round(hour * 60)) % 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _travel(f: Sequence[float], txn: Transaction) -> str:
    km = f[INDEX["distance_prev_km"]]
    gap = duration(expm1(f[INDEX["seconds_since_prev_log"]]))
    speed = f[INDEX["speed_prev_kmh"]]
    shown = f"over {MAX_SPEED_KMH:,.0f}" if speed >= MAX_SPEED_KMH else f"{speed:,.0f}"
    return f"{km:,.0f} km from the previous transaction {gap} earlier ({shown} km/h)"


def _ratio_to_card_mean(f: Sequence[float], txn: Transaction) -> str:
    ratio = exp(f[INDEX["amount_ratio_30d_log"]])
    return f"amount is {ratio:.1f}× this card's 30-day average ({money(txn.amount / ratio, txn.currency)})"


TEMPLATES: dict[str, Callable[[Sequence[float], "Transaction"], str]] = {
    "amount_log": lambda f, t: f"amount {money(t.amount, t.currency)} is among the largest seen in training",
    "hour_of_day": lambda f, t: f"at {_clock(f[INDEX['hour_of_day']])} local time, at night",
    "is_online": lambda f, t: "online, card not present",
    "is_atm": lambda f, t: "cash withdrawal at an ATM",
    "distance_home_km": lambda f, t: f"{f[INDEX['distance_home_km']]:,.0f} km from the cardholder's home",
    "card_history_log": lambda f, t: f"card has little history ({expm1(f[INDEX['card_history_log']]):.0f} earlier transactions)",
    "card_count_1h": lambda f, t: f"about {f[INDEX['card_count_1h']]:.0f} transactions on this card in the past hour",
    "card_count_1d": lambda f, t: f"about {f[INDEX['card_count_1d']]:.0f} transactions on this card in the past day",
    "card_count_7d": lambda f, t: f"about {f[INDEX['card_count_7d']]:.0f} transactions on this card in the past week",
    "card_amount_1d_log": lambda f, t: f"card spent about {money(expm1(f[INDEX['card_amount_1d_log']]), t.currency)} in the past day",
    "amount_ratio_30d_log": _ratio_to_card_mean,
    "amount_zscore_30d": lambda f, t: f"amount is far outside this card's usual range (z = {f[INDEX['amount_zscore_30d']]:.1f})",
    "seconds_since_prev_log": lambda f, t: f"only {duration(expm1(f[INDEX['seconds_since_prev_log']]))} after the card's previous transaction",
    "distance_prev_km": _travel,
    "speed_prev_kmh": _travel,
    "new_merchant": lambda f, t: "first transaction of this card at this merchant",
    "new_category": lambda f, t: f"first {t.merchant_category or 'such'} purchase for this card",
    "new_country": lambda f, t: f"first transaction in {t.country} for this card",
    "card_hour_share": lambda f, t: (
        f"at {_clock(f[INDEX['hour_of_day']])} local time, when this card is rarely active "
        f"({f[INDEX['card_hour_share']]:.0%} of its recent activity)"
    ),
    "card_small_count_1h": lambda f, t: (
        f"about {f[INDEX['card_small_count_1h']]:.0f} small (< {money(SMALL_AMOUNT, t.currency)}) "
        "amounts on this card in the past hour, a card-testing pattern"
    ),
    "merchant_count_1h": lambda f, t: f"merchant had about {f[INDEX['merchant_count_1h']]:.0f} transactions in the past hour",
    "merchant_count_1d": lambda f, t: f"merchant had about {f[INDEX['merchant_count_1d']]:.0f} transactions in the past day",
    "merchant_velocity_ratio": lambda f, t: f"merchant volume is {exp(f[INDEX['merchant_velocity_ratio']]):.1f}× its usual hourly rate",
    "merchant_new_cards_1h": lambda f, t: (
        f"about {f[INDEX['merchant_new_cards_1h']]:.0f} transactions from cards new to this merchant in the past hour"
    ),
    "merchant_amount_ratio_log": lambda f, t: f"amount is {exp(f[INDEX['merchant_amount_ratio_log']]):.1f}× this merchant's average",
}
assert set(TEMPLATES) | NEVER_A_REASON == set(FEATURE_NAMES), "every feature needs a reason template"


def is_unusual(name: str, value: float, stats: Stats) -> bool:
    """Whether ``value`` sits in the suspicious tail of the training distribution of ``name``."""
    s = stats.get(name)
    if s is None or name in NEVER_A_REASON:
        return False
    if name in LOW_IS_SUSPICIOUS:
        return value < s["p05"]
    if name == "hour_of_day":
        return value < 5.0 or value >= 23.0
    return value > s["p95"] and value > s["p50"] and value >= WORTH_SAYING.get(name, value)


def explain(
    txn: Transaction,
    features: Sequence[float],
    contributions: np.ndarray | None,
    stats: Stats,
    limit: int = 3,
) -> tuple[str, ...]:
    """Up to ``limit`` sentences for the features that most isolated ``txn`` and are unusual.

    ``contributions`` come from the detector when it can say how much each feature pushed the
    score (an optional capability); without them, features are ranked by how far into their
    suspicious training tail they sit (:func:`tail_distances`). Falls back to naming the most
    credited features, so that an alert always has a reason.
    """
    graded = contributions is not None
    weights = np.asarray(contributions if graded else tail_distances(features, stats), dtype=np.float64)
    order = np.argsort(-weights, kind="stable")
    reasons: list[str] = []
    for i in order:
        name = FEATURE_NAMES[i]
        if weights[i] <= 0 or not is_unusual(name, features[i], stats):
            continue
        text = TEMPLATES[name](features, txn)
        if text not in reasons:
            reasons.append(text)
        if len(reasons) == limit:
            break
    if not reasons:
        top = [FEATURE_NAMES[i].replace("_", " ") for i in order[:3] if graded or weights[i] > 0]
        if top:
            reasons.append("unusual combination of " + ", ".join(top))
        else:
            reasons.append("unusual pattern overall: no single feature stands out")
    return tuple(reasons)


def tail_distances(features: Sequence[float], stats: Stats) -> np.ndarray:
    """How far each feature sits beyond its median in the suspicious direction, in units of its
    training spread (median to p99, or p01 to median for low-is-suspicious features); 0 when not
    beyond or without statistics. Ranks reasons for detectors that give no contributions.

    >>> stats = {"amount_log": {"p01": 0.0, "p50": 3.0, "p99": 7.0}}
    >>> float(tail_distances([9.0] + [0.0] * 25, stats)[0])
    1.5
    """
    out = np.zeros(len(FEATURE_NAMES))
    for i, name in enumerate(FEATURE_NAMES):
        s = stats.get(name)
        if s is None or name in NEVER_A_REASON or not {"p01", "p50", "p99"} <= set(s):
            continue
        if name == "hour_of_day":  # suspicious at night, not at either end of the scale
            out[i] = float(is_unusual(name, features[i], stats))
            continue
        if name in LOW_IS_SUSPICIOUS:
            beyond, spread = s["p50"] - features[i], s["p50"] - s["p01"]
        else:
            beyond, spread = features[i] - s["p50"], s["p99"] - s["p50"]
        out[i] = max(0.0, beyond) / spread if spread > 0 else float(beyond > 0)
    return out


def thin_history(features: Sequence[float]) -> str | None:
    """The marker reason of an alert raised while its card had too little history (a warm-up artefact), else None.

    >>> thin_history([0.0] * len(FEATURE_NAMES))
    'thin history: first transaction seen for this card, its usual behaviour is not known yet'
    >>> features = [0.0] * len(FEATURE_NAMES); features[INDEX["card_history_log"]] = log(1 + 40)
    >>> thin_history(features) is None
    True
    """
    earlier = round(expm1(features[INDEX["card_history_log"]]))
    if earlier >= THIN_HISTORY_TXNS:
        return None
    seen = "first transaction seen for this card" if earlier == 0 else (
        f"only {earlier} earlier transaction{'s' if earlier > 1 else ''} seen for this card")
    return f"{THIN_HISTORY}: {seen}, its usual behaviour is not known yet"


def is_thin_history(reasons: Sequence[str]) -> bool:
    """Whether an alert's reasons carry the :func:`thin_history` marker."""
    return any(reason.startswith(THIN_HISTORY) for reason in reasons)


def feature_stats(X: np.ndarray) -> dict[str, dict[str, float]]:
    """Training distribution summary per feature, stored in the model bundle for reasons and drift checks."""
    quantiles = np.quantile(X, [0.01, 0.05, 0.5, 0.95, 0.99], axis=0)
    return {
        name: {
            "mean": float(X[:, i].mean()),
            "std": float(X[:, i].std()),
            "p01": float(quantiles[0, i]),
            "p05": float(quantiles[1, i]),
            "p50": float(quantiles[2, i]),
            "p95": float(quantiles[3, i]),
            "p99": float(quantiles[4, i]),
        }
        for i, name in enumerate(FEATURE_NAMES)
    }
