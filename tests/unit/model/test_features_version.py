"""FEATURES_VERSION keys saved feature state and bundles: it must change whenever the features do."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from support import T0, make_txn

from fraudstream.model.features import FEATURE_NAMES, FeatureState
from fraudstream.model.features.step import FEATURES_REVISION, FEATURES_VERSION, features_version

# FEATURES_VERSION -> digest of what the step computes on a fixed stream (features and saved state).
# If test_the_step_computes_what_its_version_recorded fails, the step's output or its state layout
# changed: bump FEATURES_REVISION in model/features/step.py and record the new pair here. Runners
# then start fresh instead of resuming state the new step cannot read, and old bundles are refused.
GOLDEN = {
    "1-d8c67b2f6ec4": "1dee5df3324af6a9e9f8a09866c787d5e9d1c284f91669ac8cbb634a973c6aa8",
    "2-d8c67b2f6ec4": "f13f1cb3640bff53715351d5e5572b3a50d848d9f7c1d43d8972b8129d681f55",
}


def test_the_version_follows_the_feature_list_and_the_revision() -> None:
    assert FEATURES_VERSION == features_version(FEATURES_REVISION, FEATURE_NAMES)
    assert features_version(1, FEATURE_NAMES) != features_version(1, (*FEATURE_NAMES, "new_feature"))
    assert features_version(1, FEATURE_NAMES) != features_version(1, tuple(reversed(FEATURE_NAMES)))
    assert features_version(1, FEATURE_NAMES) != features_version(2, FEATURE_NAMES)


def _fixed_stream() -> list[Any]:
    rng = random.Random(20260101)
    cities = [(40.71, -74.01), (34.05, -118.24), (41.88, -87.63), (51.51, -0.13)]
    txns, t = [], T0
    for n in range(600):
        t += rng.choice([5_000, 60_000, 900_000, 3_600_000, 20 * 3_600_000])
        lat, lon = rng.choice(cities)
        txns.append(make_txn(
            n, t,
            card_id=f"card-{rng.randrange(12)}",
            merchant_id=f"m-{rng.randrange(8)}",
            amount=round(rng.choice([rng.uniform(0.5, 4.9), rng.lognormvariate(3.0, 1.0), rng.uniform(500, 3000)]), 2),
            merchant_category=rng.choice(["grocery", "travel", "electronics"]),
            channel=rng.choice(["card_present", "online", "atm"]),
            country=rng.choice(["US", "US", "US", "GB"]),
            merchant_lat=lat, merchant_lon=lon,
        ))
    return txns


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")  # insensitive to the last bits a libm may differ in
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def test_the_step_computes_what_its_version_recorded() -> None:
    state = FeatureState()
    rows = [state.step(t) for t in _fixed_stream()]
    payload = json.dumps(_rounded({"features": rows, "state": state.snapshot()}), sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    assert FEATURES_VERSION in GOLDEN, f"record {FEATURES_VERSION!r}: {digest!r} in GOLDEN"
    assert GOLDEN[FEATURES_VERSION] == digest, (
        f"the feature step's output or state changed ({digest}) but FEATURES_VERSION is still {FEATURES_VERSION}: "
        "bump FEATURES_REVISION in model/features/step.py and record the new version and digest in GOLDEN"
    )
