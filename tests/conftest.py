"""Shared fixtures; plain helpers live in ``support`` (tests import them from there)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from support import make_txn

from fraudstream.model.schema import Transaction

# Card numbers are hashed with this key in every test and every command a test starts (they inherit
# the environment), instead of each run generating var/card_id.key in the working directory.
TEST_CARD_ID_KEY = "fraudstream-tests-card-id-key"
os.environ.setdefault("FRAUDSTREAM_CARD_ID_KEY", TEST_CARD_ID_KEY)


@pytest.fixture
def txn() -> Callable[..., Transaction]:
    return make_txn
