"""Every alert-store backend, for the contract suite: one line per backend.

SQLite and the in-memory store need nothing; the search-engine backends need their real node
(started through scripts/services/*) and are marked ``integration``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fraudstream.services.stores.alerts.base import AlertStore


def _sqlite(tmp: Path) -> AlertStore:
    from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore

    return SqliteAlertStore(tmp / "alerts.db")


def _memory(tmp: Path) -> AlertStore:
    from fraudstream.services.stores.alerts.memory import MemoryAlertStore

    return MemoryAlertStore()


BACKENDS: dict[str, tuple[Callable[[Path], AlertStore], list]] = {
    "sqlite": (_sqlite, []),
    "memory": (_memory, []),
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
