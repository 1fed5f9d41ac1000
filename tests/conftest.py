"""Shared fixtures: small transaction factories and a tiny trained model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fraudstream.model.schema import Transaction, validate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday
HOUR = 3_600_000

BASE: dict[str, Any] = {
    "transaction_id": "t",
    "card_id": "card-1",
    "merchant_id": "m-1",
    "amount": 20.0,
    "currency": "USD",
    "merchant_category": "grocery",
    "channel": "card_present",
    "country": "US",
    "card_lat": 40.7128,
    "card_lon": -74.0060,
    "merchant_lat": 40.7128,
    "merchant_lon": -74.0060,
}


def make_txn(n: int = 0, t_ms: int = T0, **fields: Any) -> Transaction:
    """A valid transaction with id ``t<n>`` at ``t_ms``; ``fields`` override the defaults."""
    return validate({**BASE, "transaction_id": f"t{n}", "timestamp": t_ms, **fields})


@pytest.fixture
def txn() -> Callable[..., Transaction]:
    return make_txn
