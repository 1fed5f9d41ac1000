"""The feature step: each feature's meaning, bounded state, event time and determinism."""

from __future__ import annotations

import math

import pytest
from support import HOUR, T0, make_txn
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.model.features import FEATURE_NAMES, FeatureState
from fraudstream.model.features.state import MAX_RECENT_MERCHANTS
from fraudstream.model.features.step import INDEX, NO_PREVIOUS_SECONDS


def feats(values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, values))


def test_first_transaction_of_a_card_has_no_history() -> None:
    f = feats(FeatureState().step(make_txn(amount=42.5, channel="online")))
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 26
    assert f["amount_log"] == pytest.approx(math.log1p(42.5))
    assert f["is_online"] == 1.0 and f["is_atm"] == 0.0
    assert f["card_history_log"] == 0.0
    assert f["card_count_1h"] == f["card_count_1d"] == f["card_count_7d"] == 0.0
    assert f["seconds_since_prev_log"] == pytest.approx(math.log1p(NO_PREVIOUS_SECONDS))
    assert f["new_merchant"] == f["new_country"] == f["new_category"] == 0.0  # nothing to be new against
    assert f["card_hour_share"] == pytest.approx(1 / 6)


def test_local_hour_and_weekday_come_from_the_timestamp_offset() -> None:
    f = feats(FeatureState().step(make_txn(timestamp="2026-01-04T23:30:00-05:00")))  # Sunday evening locally
    assert f["hour_of_day"] == pytest.approx(23.5)
    assert f["day_of_week"] == 6.0


def test_window_counts_decay_with_event_time() -> None:
    state = FeatureState()
    state.step(make_txn(0, T0))
    f = feats(state.step(make_txn(1, T0 + HOUR)))
    assert f["card_count_1h"] == pytest.approx(math.exp(-1))
    assert f["card_count_1d"] == pytest.approx(math.exp(-1 / 24))
    assert f["card_count_7d"] == pytest.approx(math.exp(-1 / 168))
    assert f["seconds_since_prev_log"] == pytest.approx(math.log1p(3600))
    assert f["card_history_log"] == pytest.approx(math.log1p(1))


def test_amount_relative_to_the_cards_usual() -> None:
    state = FeatureState()
    for i in range(10):
        state.step(make_txn(i, T0 + i * HOUR, amount=10.0))
    f = feats(state.step(make_txn(99, T0 + 10 * HOUR, amount=100.0)))
    # The 30-day mean is a decayed mean of equal amounts, so exactly 10.
    assert f["amount_ratio_30d_log"] == pytest.approx(math.log(10.0))
    assert f["amount_zscore_30d"] > 5


def test_zero_amount_card_checks_are_seen_and_keep_the_ratios_finite() -> None:
    state = FeatureState()
    for i in range(5):
        state.step(make_txn(i, T0 + i * HOUR, amount=20.0))
    f = feats(state.step(make_txn(10, T0 + 5 * HOUR, amount=0)))  # a zero-amount authorisation (card check)
    assert all(math.isfinite(v) for v in f.values())
    assert f["amount_log"] == 0.0
    assert f["amount_ratio_30d_log"] == pytest.approx(math.log(0.01 / 20.0))  # floored at a cent
    assert f["merchant_amount_ratio_log"] == pytest.approx(math.log(0.01 / 20.0))
    f = feats(state.step(make_txn(11, T0 + 5 * HOUR + 60_000, amount=0)))
    assert f["card_small_count_1h"] > 0.9  # the first check counts as a small amount: the card-testing signal
    only_checks = FeatureState()
    for i in range(3):  # a card and merchant that have only ever seen zero amounts: no mean to divide by
        f = feats(only_checks.step(make_txn(i, T0 + i * HOUR, amount=0.0)))
    assert f["amount_ratio_30d_log"] == 0.0 and f["merchant_amount_ratio_log"] == 0.0


def test_distance_and_speed_from_the_previous_location() -> None:
    state = FeatureState()
    state.step(make_txn(0, T0))  # New York
    f = feats(state.step(make_txn(1, T0 + HOUR // 2, merchant_lat=34.0522, merchant_lon=-118.2437)))  # LA
    assert f["distance_prev_km"] == pytest.approx(3936, abs=2)
    assert f["speed_prev_kmh"] == pytest.approx(2 * 3936, abs=4)
    assert f["distance_home_km"] == pytest.approx(3936, abs=2)


def test_new_merchant_country_and_category_flags() -> None:
    state = FeatureState()
    state.step(make_txn(0, T0))
    same = feats(state.step(make_txn(1, T0 + HOUR)))
    new = feats(state.step(make_txn(2, T0 + 2 * HOUR, merchant_id="m-2", country="FR", merchant_category="jewelry")))
    assert (same["new_merchant"], same["new_country"], same["new_category"]) == (0.0, 0.0, 0.0)
    assert (new["new_merchant"], new["new_country"], new["new_category"]) == (1.0, 1.0, 1.0)


def test_card_testing_and_merchant_spike_signals() -> None:
    state = FeatureState()
    for i in range(6):
        state.step(make_txn(i, T0 + i * 20_000, amount=1.0, merchant_id="m-shady", card_id="victim"))
    f = feats(state.step(make_txn(7, T0 + 130_000, amount=1.5, merchant_id="m-shady", card_id="victim")))
    assert f["card_small_count_1h"] > 5
    # Many cards new to one merchant within minutes.
    for i in range(20):
        state.step(make_txn(100 + i, T0 + HOUR + i * 1000, card_id=f"c{i}", merchant_id="m-hit"))
    g = feats(state.step(make_txn(200, T0 + HOUR + 21_000, card_id="c-last", merchant_id="m-hit")))
    assert g["merchant_new_cards_1h"] > 19
    assert g["merchant_count_1h"] > 19
    assert g["merchant_velocity_ratio"] > math.log(10)


def test_state_per_card_is_bounded() -> None:
    state = FeatureState()
    for i in range(1000):
        state.step(make_txn(i, T0 + i * 1000, merchant_id=f"m{i}", country=f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}"))
    card = state.cards["card-1"]
    assert len(card.merchants) == MAX_RECENT_MERCHANTS
    assert len(card.countries) <= 8 and len(card.categories) <= 16
    assert len(card.to_list()) == len(type(card).__slots__)


def test_late_event_is_weighted_by_age_and_never_rewinds_the_clock() -> None:
    state = FeatureState()
    state.step(make_txn(0, T0 + 2 * HOUR))
    late = feats(state.step(make_txn(1, T0)))  # two hours older than the state
    assert late["seconds_since_prev_log"] == 0.0
    assert state.cards["card-1"].t == T0 + 2 * HOUR
    assert state.cards["card-1"].c1h == pytest.approx(1 + math.exp(-2))


def test_snapshot_and_restore_continue_identically() -> None:
    events = [make_txn(i, T0 + i * 600_000, card_id=f"c{i % 3}", merchant_id=f"m{i % 4}", amount=5.0 + i) for i in range(40)]
    straight = FeatureState()
    expected = [straight.step(t) for t in events]
    first = FeatureState()
    got = [first.step(t) for t in events[:25]]
    resumed = FeatureState.from_snapshot(first.snapshot())
    got += [resumed.step(t) for t in events[25:]]
    assert got == expected


event = st.builds(
    lambda i, dt, card, merchant, amount, lat, online: make_txn(
        i, T0 + dt, card_id=f"c{card}", merchant_id=f"m{merchant}", amount=amount,
        merchant_lat=lat, channel="online" if online else "card_present",
    ),
    st.integers(0, 10**6), st.integers(0, 40 * 86_400_000), st.integers(0, 5), st.integers(0, 5),
    st.one_of(st.just(0.0), st.floats(0.0, 0.02), st.floats(0.01, 1e6)), st.floats(-89, 89), st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(event, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_features_are_deterministic_and_finite_whatever_the_order(events, rng) -> None:
    shuffled = rng.sample(events, len(events))
    orders = [events, sorted(events, key=lambda t: t.timestamp_ms), shuffled]
    probe_ms = max(t.timestamp_ms for t in events) + HOUR
    for order in orders:
        a, b = FeatureState(), FeatureState()
        first = [a.step(t) for t in order]
        assert first == [b.step(t) for t in order]  # the same events in the same order: the same features
        assert all(math.isfinite(v) for row in first for v in row)
        assert all(len(row) == len(FEATURE_NAMES) for row in first)
        # Whatever the order, each card has seen all of its transactions by the end.
        for card in {t.card_id for t in events}:
            seen = feats(a.step(make_txn(10**7, probe_ms, card_id=card)))["card_history_log"]
            assert seen == pytest.approx(math.log1p(sum(t.card_id == card for t in events)))


@settings(max_examples=40, deadline=None)
@given(st.lists(event, min_size=1, max_size=30), st.lists(st.sampled_from([0, 1, None]), min_size=30, max_size=30))
def test_labels_cannot_change_features(events, labels) -> None:
    relabelled = [
        make_txn(0, t.timestamp_ms, **{**{k: getattr(t, k) for k in ("transaction_id", "card_id", "merchant_id", "amount", "merchant_lat", "channel")}, "is_fraud": label})
        for t, label in zip(events, labels)
    ]
    assert [t.is_fraud for t in relabelled] == labels[: len(events)]
    assert _run(events) == _run(relabelled)


def _run(events):
    state = FeatureState()
    return [state.step(t) for t in events]


def test_index_reads_each_feature_where_the_step_writes_it() -> None:
    # reasons.py reads features by name through INDEX: it must point at the value the step computed.
    assert sorted(INDEX.values()) == list(range(len(FEATURE_NAMES)))  # one position per name, none shared
    state = FeatureState()
    state.step(make_txn(0, T0, amount=10.0))
    f = state.step(make_txn(1, T0 + 90 * 60_000, amount=250.0, channel="atm", merchant_id="m-2"))  # Thu 01:30 UTC
    known = {
        "amount_log": math.log1p(250.0),
        "hour_of_day": 1.5,
        "day_of_week": 3.0,
        "is_online": 0.0,
        "is_atm": 1.0,
        "card_history_log": math.log1p(1),
        "seconds_since_prev_log": math.log1p(90 * 60),
        "new_merchant": 1.0,
        "merchant_count_1h": 0.0,  # m-2's first transaction
    }
    assert {name: f[INDEX[name]] for name in known} == pytest.approx(known)


@settings(max_examples=60, deadline=None)
@given(st.lists(event, min_size=1, max_size=40))
def test_a_merchant_stage_apart_from_the_card_stage_computes_what_step_computes(events) -> None:
    """The runtime the split is for: card halves first, then each merchant's events in their own stage, with
    only the transaction and its hand-over between them; the merchant stages run merchant after merchant."""
    from fraudstream.model.features.state import CardState, MerchantState
    from fraudstream.model.features.step import N_CARD_FEATURES, card_step, merchant_step

    expected = _run(events)
    cards: dict[str, CardState] = {}
    handed = [(t, *card_step(cards.setdefault(t.card_id, CardState()), t)) for t in events]
    rows: dict[int, tuple[float, ...]] = {}
    for merchant_id in sorted({t.merchant_id for t in events}):
        merchant = MerchantState()
        for i, (t, card_features, handover) in enumerate(handed):
            if t.merchant_id == merchant_id:
                assert len(card_features) == N_CARD_FEATURES
                rows[i] = card_features + merchant_step(merchant, t, handover)
    assert [rows[i] for i in range(len(events))] == expected


@pytest.mark.parametrize("ttl_days", [None, 2])
def test_the_two_halves_of_a_split_store_compute_what_one_store_computes(ttl_days) -> None:
    """The Kafka runner keeps cards in one store (card stage) and merchants in another (merchant stage)."""
    from fraudstream.model.schema import validate
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    ttl = ttl_days * 86_400_000 if ttl_days else None
    whole, cards, merchants = FeatureState(ttl), FeatureState(ttl), FeatureState(ttl)
    for row in generate(GeneratorConfig(cards=200, days=6, seed=9)):
        txn = validate(row)
        card_part, handover = cards.card_features(txn)
        assert whole.features(txn) == card_part + merchants.merchant_features(txn, handover)
    assert len(cards.merchants) == 0 and len(merchants.cards) == 0
