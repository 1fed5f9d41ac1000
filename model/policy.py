"""Score → decision, kept apart from the detector: a threshold set from the review budget.

Fraud teams budget review work as alerts per 1,000 transactions, so the threshold is the score
that the target share of training transactions reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import overload

import numpy as np


@dataclass(frozen=True, slots=True)
class Decision:
    """The pipeline's verdict on one transaction."""

    transaction_id: str
    score: float  # in [0, 1], higher = more suspicious
    alert: bool
    reasons: tuple[str, ...] = ()


def threshold_for_alert_rate(scores: np.ndarray, alerts_per_1000: float) -> float:
    """The score reached by the top ``alerts_per_1000`` of every 1,000 ``scores`` (ties at the cut alert together).

    >>> threshold_for_alert_rate(np.array([0.1, 0.9, 0.5, 0.7]), 500)
    0.7
    """
    if not 0 < alerts_per_1000 <= 1000:
        raise ValueError(f"alert rate must be in (0, 1000] alerts per 1,000 transactions, got {alerts_per_1000}")
    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if values.size == 0:
        raise ValueError("cannot set a threshold from no scores")
    k = max(1, ceil(values.size * alerts_per_1000 / 1000))
    return float(values[k - 1])


@overload
def is_alert(score: float, threshold: float) -> bool: ...
@overload
def is_alert(score: np.ndarray, threshold: float) -> np.ndarray: ...


def is_alert(score: float | np.ndarray, threshold: float) -> bool | np.ndarray:
    """The one alerting rule, for one score or an array of them: a score at or above the threshold.

    Every path that turns a score into an alert (scoring, training's alert budget, evaluation)
    calls this, so the rule lives in one place.

    >>> is_alert(0.7, 0.7), is_alert(0.69, 0.7), is_alert(np.array([0.2, 0.8]), 0.5).tolist()
    (True, False, [False, True])
    """
    return score >= threshold
