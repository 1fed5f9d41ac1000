"""Threshold from the review budget, reason sentences, and the evaluation metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import T0, make_txn

from fraudstream.model.evaluate import card_precision_at_k, evaluate
from fraudstream.model.features.step import FEATURE_NAMES, INDEX
from fraudstream.model.policy import threshold_for_alert_rate
from fraudstream.model.reasons import TEMPLATES, explain, feature_stats, tail_distances


@pytest.mark.parametrize("rate", [1.0, 5.0, 10.0, 100.0])
def test_threshold_meets_the_alert_budget(rate: float) -> None:
    scores = np.random.default_rng(0).random(20_000)
    threshold = threshold_for_alert_rate(scores, rate)
    assert np.sum(scores >= threshold) == math.ceil(20_000 * rate / 1000)


@pytest.mark.parametrize("rate", [0, -1, 1000.5])
def test_threshold_rejects_impossible_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="alert rate"):
        threshold_for_alert_rate(np.ones(10), rate)


def _stats() -> dict:
    X = np.random.default_rng(1).normal(size=(2000, len(FEATURE_NAMES)))
    return feature_stats(X)


def _features(**values: float) -> list[float]:
    row = [0.0] * len(FEATURE_NAMES)
    for name, value in values.items():
        row[INDEX[name]] = value
    return row


def test_reasons_name_the_evidence_of_the_most_credited_unusual_features() -> None:
    txn = make_txn(amount=415.0)
    row = _features(
        amount_ratio_30d_log=math.log(8.3), distance_prev_km=1240.0, speed_prev_kmh=3720.0,
        seconds_since_prev_log=math.log1p(1200), card_count_1h=0.1,
    )
    credit = np.zeros(len(FEATURE_NAMES))
    credit[INDEX["amount_ratio_30d_log"]] = 0.5
    credit[INDEX["distance_prev_km"]] = 0.4
    credit[INDEX["card_count_1h"]] = 0.9  # most credited, but not unusual: must not be said
    reasons = explain(txn, row, credit, _stats())
    assert reasons == (
        "amount is 8.3× this card's 30-day average ($50.00)",
        "1,240 km from the previous transaction 20 minutes earlier (3,720 km/h)",
    )


def test_an_alert_always_has_a_reason() -> None:
    credit = np.zeros(len(FEATURE_NAMES))
    credit[INDEX["merchant_count_1h"]] = 1.0
    credit[INDEX["hour_of_day"]] = 0.5
    credit[INDEX["amount_log"]] = 0.2
    assert explain(make_txn(), _features(hour_of_day=12.0), credit, _stats()) == (
        "unusual combination of merchant count 1h, hour of day, amount log",
    )


def test_values_in_the_tail_but_too_small_to_matter_are_not_said() -> None:
    stats = {name: {"p05": 0.0, "p50": 0.0, "p95": 0.1, "p99": 0.2} for name in FEATURE_NAMES}
    credit = np.zeros(len(FEATURE_NAMES))
    credit[INDEX["card_small_count_1h"]] = 1.0
    credit[INDEX["amount_zscore_30d"]] = 0.8
    weak = _features(card_small_count_1h=0.4, amount_zscore_30d=1.5)
    assert explain(make_txn(), weak, credit, stats)[0].startswith("unusual combination")
    strong = _features(card_small_count_1h=4.0, amount_zscore_30d=6.0)
    assert explain(make_txn(), strong, credit, stats) == (
        "about 4 small (< $5.00) amounts on this card in the past hour, a card-testing pattern",
        "amount is far outside this card's usual range (z = 6.0)",
    )


def test_every_template_renders() -> None:
    txn = make_txn(merchant_category="jewelry", country="FR")
    row = _features(card_history_log=1.0, speed_prev_kmh=10.0)
    for name, template in TEMPLATES.items():
        assert isinstance(template(row, txn), str) and template(row, txn), name


def test_card_precision_at_k_counts_cards_per_day() -> None:
    day = 86_400_000
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.1, 0.2])
    labels = np.array([1, 0, 0, 0, 1, 0])
    cards = ["a", "a", "b", "c", "a", "b"]
    times = np.array([T0, T0 + 1, T0 + 2, T0 + 3, T0 + day, T0 + day + 1])
    # Day 1: cards ranked c (0.95, legit), a (0.9, fraud) -> top-2 precision 1/2.
    # Day 2: b (0.2, legit), a (0.1, fraud) -> 1/2.
    assert card_precision_at_k(scores, labels, cards, times, k=2) == pytest.approx(0.5)
    assert card_precision_at_k(scores, labels, cards, times, k=1) == pytest.approx(0.0)


def test_evaluate_reports_overall_and_per_scenario() -> None:
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(900, int), np.ones(100, int)]
    scores = np.r_[rng.random(900) * 0.6, 0.5 + rng.random(100) * 0.5]
    scenarios = [""] * 900 + ["easy"] * 50 + ["hard"] * 50
    scores[950:] -= 0.4  # "hard" frauds score like legit ones
    result = evaluate(scores, labels, 0.6, card_ids=[f"c{i % 50}" for i in range(1000)],
                      timestamps_ms=np.full(1000, T0), scenarios=scenarios, k=10)
    assert result["transactions"] == 1000 and result["frauds"] == 100
    assert result["per_scenario"]["easy"]["roc_auc"] > 0.95
    assert result["per_scenario"]["hard"]["roc_auc"] < result["per_scenario"]["easy"]["roc_auc"]
    assert result["recall_at_alert_rate"] == pytest.approx(float(np.mean(scores[labels == 1] >= 0.6)))


# --------------------------------------------------------------------------- detectors without contributions


def test_without_contributions_reasons_rank_features_by_how_far_into_their_tail_they_sit() -> None:
    stats = _stats()  # standard normal features: p50 ~ 0, p99 ~ 2.3
    row = _features(amount_zscore_30d=6.0, card_count_1h=30.0, merchant_count_1h=9.0, hour_of_day=12.0)
    distances = tail_distances(row, stats)
    assert distances[INDEX["card_count_1h"]] > distances[INDEX["merchant_count_1h"]] > distances[INDEX["amount_zscore_30d"]] > 0
    assert explain(make_txn(), row, None, stats) == (
        "about 30 transactions on this card in the past hour",
        "merchant had about 9 transactions in the past hour",
        "amount is far outside this card's usual range (z = 6.0)",
    )


def test_without_contributions_an_alert_still_gets_a_reason() -> None:
    stats = _stats()
    row = _features(amount_log=1.0, hour_of_day=12.0)  # above its median, but not worth saying
    (reason,) = explain(make_txn(), row, None, stats)
    assert reason.startswith("unusual combination of amount log, ")  # furthest beyond its median first
    assert explain(make_txn(), _features(hour_of_day=12.0), None, {}) == ("unusual pattern overall: no single feature stands out",)


def test_scoring_decides_alerts_with_the_policy_function_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.model import scoring
    from fraudstream.model.train import feature_matrix, train_bundle

    txns = [make_txn(i, T0 + i * 600_000, card_id=f"c{i % 7}", amount=5.0 + (i % 11) * 40) for i in range(300)]
    bundle = train_bundle(feature_matrix(txns), created_at="test", alert_rate=100.0)
    assert any(d.alert for d in scoring.Scorer(bundle).decide_batch(txns))
    calls: list[object] = []

    def never(score: object, threshold: float) -> object:
        calls.append(score)
        return score < -1.0  # same type as the real rule (bool or bool array), always false

    monkeypatch.setattr(scoring, "is_alert", never)
    assert not any(d.alert for d in scoring.Scorer(bundle).decide_batch(txns))
    assert not any(scoring.Scorer(bundle).decide(t).alert for t in txns)
    assert len(calls) == 1 + len(txns)  # one vectorised call per batch, one per single decision


def test_alerts_on_cards_with_thin_history_carry_the_marker_and_the_rest_do_not() -> None:
    import dataclasses

    from fraudstream.model.reasons import THIN_HISTORY_TXNS, is_thin_history
    from fraudstream.model.scoring import Scorer
    from fraudstream.model.train import train_bundle

    bundle = train_bundle(np.random.default_rng(0).normal(size=(300, len(FEATURE_NAMES))), created_at="2026-01-01T00:00:00Z")
    everything = dataclasses.replace(bundle, threshold=0.0)  # every transaction alerts: only the marker is under test
    txns = [make_txn(i, T0 + i * 3_600_000) for i in range(THIN_HISTORY_TXNS + 3)]
    decisions = Scorer(everything).decide_batch(txns)
    assert [is_thin_history(d.reasons) for d in decisions] == [True] * THIN_HISTORY_TXNS + [False] * 3
    assert decisions[0].reasons[-1].startswith("thin history: first transaction seen for this card")
    assert not any("card has little history" in r for d in decisions for r in d.reasons)  # said once, by the marker
