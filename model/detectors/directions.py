"""Which way each feature points to fraud, and which analyst's question it answers (its group).

"Unusual" only counts in the direction fraud takes: a much larger amount than the card's usual,
more transactions in the hour, a shorter gap, farther from home, a new merchant, an hour the
card does not use. The other side (smaller, slower, nearer, a familiar merchant) is never
evidence. ``rare`` marks features without a direction (hour of day), scored by how rare the
value is; ``None`` means the feature is not used as evidence on its own.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["up", "down", "rare"]

# feature -> (group, direction); features absent here carry no evidence of their own.
EVIDENCE: dict[str, tuple[str, Direction]] = {
    "amount_log": ("amount", "up"),
    "amount_ratio_30d_log": ("amount", "up"),
    "amount_zscore_30d": ("amount", "up"),
    "card_amount_1d_log": ("velocity", "up"),  # spend per day: a rate, high for every busy card
    "merchant_amount_ratio_log": ("amount", "up"),
    "card_count_1h": ("velocity", "up"),
    "card_count_1d": ("velocity", "up"),
    "seconds_since_prev_log": ("velocity", "down"),
    "card_small_count_1h": ("velocity", "up"),
    "distance_home_km": ("geography", "up"),
    "distance_prev_km": ("geography", "up"),
    "speed_prev_kmh": ("geography", "up"),
    "new_country": ("geography", "up"),
    "new_merchant": ("novelty", "up"),
    "new_category": ("novelty", "up"),
    "hour_of_day": ("time", "rare"),
    "card_hour_share": ("time", "down"),
    "merchant_velocity_ratio": ("merchant", "up"),
    "merchant_new_cards_1h": ("merchant", "up"),
}
GROUPS: tuple[str, ...] = ("amount", "velocity", "geography", "novelty", "time", "merchant")


def evidence_for(feature_names: tuple[str, ...], overrides: dict[str, tuple[str, Direction] | None] | None = None,
                 ) -> dict[int, tuple[str, Direction]]:
    """Column index -> (group, direction) for the named features that carry evidence."""
    table = dict(EVIDENCE)
    for name, value in (overrides or {}).items():
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value
    return {i: table[name] for i, name in enumerate(feature_names) if name in table}
