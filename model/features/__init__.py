"""Streaming features: one ``step`` per transaction, used unchanged by training and every runtime."""

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.state import CardState, MerchantState
from fraudstream.model.features.step import FEATURE_NAMES, N_FEATURES, step

__all__ = ["FEATURE_NAMES", "N_FEATURES", "CardState", "FeatureState", "MerchantState", "step"]
