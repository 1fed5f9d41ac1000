"""Shared fixtures; plain helpers live in ``support`` (tests import them from there)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis_support import run_script
from support import free_port, make_txn, service

from fraudstream.model.schema import Transaction

# Card numbers are hashed with this key in every test and every command a test starts (they inherit
# the environment), instead of each run generating var/card_id.key in the working directory.
TEST_CARD_ID_KEY = "fraudstream-tests-card-id-key"
os.environ.setdefault("FRAUDSTREAM_CARD_ID_KEY", TEST_CARD_ID_KEY)


@pytest.fixture
def txn() -> Callable[..., Transaction]:
    return make_txn


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the project's Redis (scripts/services/redis on $REDIS_PORT; started if needed, left running for reuse)."""
    return os.environ.get("FRAUDSTREAM_TEST_REDIS") or service("redis", "start")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A Redis of this test's own (URL, port, files: a test may kill it and start it again), stopped afterwards."""
    port, var = free_port(), tmp_path / "redis"
    url = run_script("start", port, var)
    yield url, port, var
    run_script("stop", port, var)
