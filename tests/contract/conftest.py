"""Every alert-store backend, for the contract suite: one line per backend.

SQLite and the in-memory store need nothing; the search-engine backends need their real node
(started through scripts/services/*) and are marked ``integration``.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import service

from fraudstream.services.stores.alerts.base import AlertStore


def _sqlite(tmp: Path) -> AlertStore:
    from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore

    return SqliteAlertStore(tmp / "alerts.db")


def _memory(tmp: Path) -> AlertStore:
    from fraudstream.services.stores.alerts.memory import MemoryAlertStore

    return MemoryAlertStore()


@functools.cache
def _node(name: str) -> str:
    """host:port of the local node (FRAUDSTREAM_TEST_<NAME>_URL, or started by scripts/services/<name>)."""
    url = os.environ.get(f"FRAUDSTREAM_TEST_{name.upper()}_URL") or service(name, "start")
    return url.split("://", 1)[-1].rstrip("/")


def _search_engine(name: str) -> Callable[[Path], AlertStore]:
    def factory(tmp: Path) -> AlertStore:
        from fraudstream.services.stores.alerts.registry import open_store

        # A prefix of its own per test: its indices and templates, deleted by drop() afterwards.
        return open_store(f"{name}://{_node(name)}?prefix=fstest-{uuid.uuid4().hex[:12]}&retry_seconds=30")

    return factory


BACKENDS: dict[str, tuple[Callable[[Path], AlertStore], list]] = {
    "sqlite": (_sqlite, []),
    "memory": (_memory, []),
    "elasticsearch": (_search_engine("elasticsearch"), [pytest.mark.integration]),
    "opensearch": (_search_engine("opensearch"), [pytest.mark.integration]),
}


@pytest.fixture(params=[pytest.param(name, marks=marks) for name, (_, marks) in sorted(BACKENDS.items())])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    factory, _ = BACKENDS[request.param]
    opened = factory(tmp_path)
    try:
        yield opened
    finally:
        drop = getattr(opened, "drop", None)  # search-engine backends delete their test indices
        if drop is not None:
            drop()
        opened.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
