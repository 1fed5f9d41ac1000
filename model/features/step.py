"""The feature step: ``step(card, merchant, txn) -> features``, the one definition every runtime uses.

It reads the card's and merchant's state *before* the transaction (so a transaction never sees
itself), then folds the transaction in. Event time only: the same events in the same order give
the same features, whatever the wall clock. An event older than the state's newest event is
folded in with its decayed weight and never moves the state's clock backwards, so out-of-order
input is handled deterministically.

The step is two halves with an explicit hand-over, composed by :func:`step`:

- :func:`card_step` ``(card, txn) -> (card_features, handover)``: the transaction's own features
  and the card's (the first :data:`N_CARD_FEATURES` of :data:`FEATURE_NAMES`);
- :func:`merchant_step` ``(merchant, txn, handover) -> merchant_features``: the merchant's (the
  last :data:`N_MERCHANT_FEATURES`).

Why: training computes a merchant's features over *all* of the merchant's traffic, but a runtime
keyed by card (Kafka partitions, API replicas, Spark's per-key state) sees only part of it. With
the halves apart, a runtime can run :func:`card_step` where the card's state lives and
:func:`merchant_step` in a separate stage keyed by merchant (a merchant-keyed Kafka stage, or a
shared state store) and still compute exactly what :func:`step` computes, provided the merchant
stage sees the merchant's events in the same order. The halves share nothing but the transaction
and the :class:`CardHandover`, which carries the one fact about the card the merchant needs: whether
the merchant was new to the card (not among its recent merchants), for ``merchant_new_cards_1h``.
It is one boolean, so it travels with the transaction through a repartition topic.

>>> from fraudstream.model.features.state import CardState, MerchantState
>>> from fraudstream.model.schema import validate
>>> txn = validate({"transaction_id": "t1", "timestamp": "2026-01-01T10:00:00Z", "card_id": "c",
...                 "merchant_id": "m", "amount": 12.5})
>>> card_features, handover = card_step(CardState(), txn)
>>> handover.new_to_merchant, len(card_features) + len(merchant_step(MerchantState(), txn, handover)) == N_FEATURES
(True, True)
"""

from __future__ import annotations

from hashlib import sha256
from math import exp, log, log1p, sqrt
from typing import TYPE_CHECKING, NamedTuple

from fraudstream.model.features.geo import haversine_km
from fraudstream.model.features.state import (
    DAY_MS,
    HOUR_BLOCKS,
    HOUR_MS,
    MAX_RECENT_CATEGORIES,
    MAX_RECENT_COUNTRIES,
    MAX_RECENT_MERCHANTS,
    MONTH_MS,
    WEEK_MS,
    CardState,
    MerchantState,
    remember,
)

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

FEATURE_NAMES: tuple[str, ...] = (
    "amount_log",  # log(1 + amount)
    "hour_of_day",  # local time of day in hours, 0..24
    "day_of_week",  # Monday = 0
    "is_online",
    "is_atm",
    "distance_home_km",  # cardholder's home to where it happened (0 when unknown)
    "card_history_log",  # log(1 + earlier transactions of this card)
    "card_count_1h",  # decayed count of the card's transactions, 1 hour window
    "card_count_1d",
    "card_count_7d",
    "card_amount_1d_log",  # log(1 + amount the card spent in the last day)
    "amount_ratio_30d_log",  # log(amount / card's 30-day mean amount); 0 without history
    "amount_zscore_30d",  # z-score of log(amount) within the card's 30-day history
    "seconds_since_prev_log",  # log(1 + seconds since the card's previous transaction)
    "distance_prev_km",  # from the card's previous located transaction
    "speed_prev_kmh",  # implied travel speed from that transaction (capped)
    "new_merchant",  # 1 if the card has history but not at this merchant
    "new_category",
    "new_country",
    "card_hour_share",  # share of the card's 30-day activity in this 4-hour block of the day
    "card_small_count_1h",  # small amounts (< SMALL_AMOUNT) in the last hour: card testing
    "merchant_count_1h",
    "merchant_count_1d",
    "merchant_velocity_ratio",  # log of the merchant's last-hour rate over its 7-day hourly rate
    "merchant_new_cards_1h",  # last-hour transactions from cards new to this merchant
    "merchant_amount_ratio_log",  # log(amount / merchant's 30-day mean amount)
)
N_FEATURES = len(FEATURE_NAMES)
N_MERCHANT_FEATURES = 5  # the merchant's features come last: merchant_count_1h .. merchant_amount_ratio_log
N_CARD_FEATURES = N_FEATURES - N_MERCHANT_FEATURES  # the transaction's own and the card's
INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
# Bump FEATURES_REVISION whenever step() computes any feature differently or the card/merchant
# state layout changes; a new feature list changes FEATURES_VERSION by itself. Runners key their
# saved feature state on FEATURES_VERSION (not on the model), so a retrain keeps the state.
# tests/unit/model/test_features_version.py fails when the output changes without a bump.
FEATURES_REVISION = 2  # 2: zero amounts (ratios floored at a cent), recent-id memory in the card state


def features_version(revision: int, names: tuple[str, ...]) -> str:
    """``<revision>-<digest of the names>``: changes with the feature list or a deliberate bump."""
    return f"{revision}-" + sha256("\n".join(names).encode()).hexdigest()[:12]


FEATURES_VERSION = features_version(FEATURES_REVISION, FEATURE_NAMES)

SMALL_AMOUNT = 5.0
MIN_RATIO_AMOUNT = 0.01  # amounts and means in ratios are floored at a cent: no log(0) for 0.00 card checks
MAX_SPEED_KMH = 20_000.0
MAX_HISTORY = 10_000
NO_PREVIOUS_SECONDS = 30 * 86_400  # what "time since previous" reads for a card's first transaction
_MIN_TRAVEL_HOURS = 1 / 60  # a minute: keeps the speed finite for simultaneous events
_HOUR_REBASE = 600.0  # rebase hour-block weights before exp() could overflow


class CardHandover(NamedTuple):
    """What the merchant half needs from the card half (see the module docstring)."""

    new_to_merchant: bool  # the merchant was not among the card's recent merchants (also for a card's first event)


_NEW_TO_MERCHANT = CardHandover(True)
_KNOWN_TO_MERCHANT = CardHandover(False)  # two constants: the hot path allocates no hand-over


def step(card: CardState, merchant: MerchantState, txn: Transaction) -> tuple[float, ...]:
    """Features of ``txn`` given its card's and merchant's history; updates both states in place.

    The tuple follows :data:`FEATURE_NAMES`. Cost and state size are O(1) per call.
    """
    card_features, handover = card_step(card, txn)
    return card_features + merchant_step(merchant, txn, handover)


def card_step(card: CardState, txn: Transaction) -> tuple[tuple[float, ...], CardHandover]:
    """The first :data:`N_CARD_FEATURES` features of ``txn`` (its own and its card's) and the hand-over for
    :func:`merchant_step`; updates the card's state in place."""
    t = txn.timestamp_ms
    amount = txn.amount
    log_amount = log1p(amount)
    ratio_amount = amount if amount >= MIN_RATIO_AMOUNT else MIN_RATIO_AMOUNT  # zero-amount checks: no log(0)
    local_ms = t + txn.utc_offset_min * 60_000
    hour = (local_ms % DAY_MS) / HOUR_MS
    weekday = float((local_ms // DAY_MS + 3) % 7)
    channel = txn.channel
    card_lat, card_lon = txn.card_lat, txn.card_lon
    lat, lon = txn.merchant_lat, txn.merchant_lon
    located = lat is not None and lon is not None
    if located and card_lat is not None and card_lon is not None:
        distance_home = haversine_km(card_lat, card_lon, lat, lon)  # type: ignore[arg-type]
    else:
        distance_home = 0.0

    # ---- card: read the state as of this event, then fold the event in
    prev_t = card.t
    if prev_t is None:
        card.t = t
        w1h = w1d = w7d = w30 = 1.0
        since_prev = NO_PREVIOUS_SECONDS
    else:
        dt = t - prev_t
        if dt >= 0:
            f = exp(-dt / HOUR_MS)
            card.c1h *= f
            card.small_1h *= f
            f = exp(-dt / DAY_MS)
            card.c1d *= f
            card.amount_1d *= f
            card.c7d *= exp(-dt / WEEK_MS)
            f = exp(-dt / MONTH_MS)
            card.n30 *= f
            card.amount_30 *= f
            card.log_30 *= f
            card.log_sq_30 *= f
            card.t = t
            w1h = w1d = w7d = w30 = 1.0
            since_prev = dt / 1000.0
        else:  # late event: weigh it by its age instead of rewinding the clock
            w1h, w1d, w7d, w30 = exp(dt / HOUR_MS), exp(dt / DAY_MS), exp(dt / WEEK_MS), exp(dt / MONTH_MS)
            since_prev = 0.0

    has_history = card.seen > 0
    n30 = card.n30
    if n30 > 1e-9:
        mean_amount = card.amount_30 / n30
        ratio_log = log(ratio_amount / (mean_amount if mean_amount > MIN_RATIO_AMOUNT else MIN_RATIO_AMOUNT))
        mean_log = card.log_30 / n30
        var_log = card.log_sq_30 / n30 - mean_log * mean_log
        zscore = (log_amount - mean_log) / (sqrt(var_log if var_log > 0 else 0.0) + 0.25)
    else:
        ratio_log = zscore = 0.0

    if located and card.last_lat is not None:
        distance_prev = haversine_km(card.last_lat, card.last_lon, lat, lon)  # type: ignore[arg-type]
        hours = abs(t - card.last_loc_t) / HOUR_MS  # type: ignore[operator]
        speed = distance_prev / (hours if hours > _MIN_TRAVEL_HOURS else _MIN_TRAVEL_HOURS)
        if speed > MAX_SPEED_KMH:
            speed = MAX_SPEED_KMH
    else:
        distance_prev = speed = 0.0

    new_merchant = remember(card.merchants, txn.merchant_id, MAX_RECENT_MERCHANTS)
    category = txn.merchant_category
    new_category = remember(card.categories, category, MAX_RECENT_CATEGORIES) if category else False
    country = txn.country
    new_country = remember(card.countries, country, MAX_RECENT_COUNTRIES) if country else False

    block = int(hour) * HOUR_BLOCKS // 24
    blocks = card.hour_blocks
    if card.hour_ref is None:
        card.hour_ref = t
    exponent = (t - card.hour_ref) / MONTH_MS
    if exponent > _HOUR_REBASE:
        scale = exp(-exponent)
        card.hour_blocks = blocks = [b * scale for b in blocks]
        card.hour_ref = t
        exponent = 0.0
    weight = exp(exponent)
    total = sum(blocks)
    hour_share = (blocks[block] + weight / HOUR_BLOCKS) / (total + weight)

    features = (
        log_amount, hour, weekday,
        1.0 if channel == "online" else 0.0,
        1.0 if channel == "atm" else 0.0,
        distance_home,
        log1p(card.seen if card.seen < MAX_HISTORY else MAX_HISTORY),
        card.c1h, card.c1d, card.c7d, log1p(card.amount_1d),
        ratio_log, zscore, log1p(since_prev), distance_prev, speed,
        1.0 if (new_merchant and has_history) else 0.0,
        1.0 if (new_category and has_history) else 0.0,
        1.0 if (new_country and has_history) else 0.0,
        hour_share, card.small_1h,
    )

    card.seen += 1
    card.c1h += w1h
    card.c1d += w1d
    card.c7d += w7d
    card.amount_1d += amount * w1d
    card.n30 += w30
    card.amount_30 += amount * w30
    card.log_30 += log_amount * w30
    card.log_sq_30 += log_amount * log_amount * w30
    if amount < SMALL_AMOUNT:
        card.small_1h += w1h
    blocks[block] += weight
    if located and (card.last_loc_t is None or t >= card.last_loc_t):
        card.last_lat, card.last_lon, card.last_loc_t = lat, lon, t
    return features, _NEW_TO_MERCHANT if new_merchant else _KNOWN_TO_MERCHANT


def merchant_step(merchant: MerchantState, txn: Transaction, handover: CardHandover) -> tuple[float, ...]:
    """The last :data:`N_MERCHANT_FEATURES` features of ``txn`` (its merchant's); updates the merchant's state in place.

    Needs nothing of the card but ``handover``, so it can run where the merchant's state lives.
    """
    t = txn.timestamp_ms
    amount = txn.amount
    ratio_amount = amount if amount >= MIN_RATIO_AMOUNT else MIN_RATIO_AMOUNT
    m_prev = merchant.t
    if m_prev is None:
        merchant.t = t
        v1h = v1d = v7d = v30 = 1.0
    else:
        dt = t - m_prev
        if dt >= 0:
            f = exp(-dt / HOUR_MS)
            merchant.c1h *= f
            merchant.new_cards_1h *= f
            merchant.c1d *= exp(-dt / DAY_MS)
            merchant.c7d *= exp(-dt / WEEK_MS)
            f = exp(-dt / MONTH_MS)
            merchant.n30 *= f
            merchant.amount_30 *= f
            merchant.t = t
            v1h = v1d = v7d = v30 = 1.0
        else:
            v1h, v1d, v7d, v30 = exp(dt / HOUR_MS), exp(dt / DAY_MS), exp(dt / WEEK_MS), exp(dt / MONTH_MS)
    m_c1h = merchant.c1h
    velocity = log((m_c1h + 1.0) / (merchant.c7d / 168.0 + 1.0))
    if merchant.amount_30 > MIN_RATIO_AMOUNT * merchant.n30:
        m_ratio = log(ratio_amount * merchant.n30 / merchant.amount_30)
    else:  # no history, or a mean under a cent (zero-amount checks): the mean counts as a cent
        m_ratio = log(ratio_amount / MIN_RATIO_AMOUNT) if merchant.n30 > 0 else 0.0
    features_merchant = (m_c1h, merchant.c1d, velocity, merchant.new_cards_1h, m_ratio)
    merchant.c1h += v1h
    merchant.c1d += v1d
    merchant.c7d += v7d
    if handover.new_to_merchant:
        merchant.new_cards_1h += v1h
    merchant.n30 += v30
    merchant.amount_30 += amount * v30

    return features_merchant
