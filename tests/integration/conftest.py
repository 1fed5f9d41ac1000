"""Real services for integration tests, started by the project's own scripts (idempotent)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from support import service


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap address of the single local broker (started if needed, left running for reuse)."""
    return os.environ.get("FRAUDSTREAM_TEST_KAFKA") or service("kafka", "start")


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[str]:
    """A three-node cluster (replication 3, min.insync.replicas 2), stopped after the module."""
    bootstrap = service("kafka", "start", "--brokers", "3")
    yield bootstrap
    service("kafka", "stop", "--brokers", "3")


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and group names, so tests never see each other's messages."""
    return uuid.uuid4().hex[:8]
