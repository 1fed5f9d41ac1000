"""Shared fixtures; plain helpers live in ``support`` (tests import them from there)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import make_txn

from fraudstream.model.schema import Transaction


@pytest.fixture
def txn() -> Callable[..., Transaction]:
    return make_txn
