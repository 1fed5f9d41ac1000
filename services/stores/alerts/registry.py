"""Alert-store backends by URL scheme: one line per backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fraudstream.services.stores.alerts.base import AlertStore


def _sqlite(target: str) -> AlertStore:
    from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore

    return SqliteAlertStore(target)


def _memory(target: str) -> AlertStore:
    from fraudstream.services.stores.alerts.memory import MemoryAlertStore

    return MemoryAlertStore()


BACKENDS: dict[str, Callable[[str], AlertStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
}


def open_store(url: str | Path) -> AlertStore:
    """Open the store named by ``url``: ``sqlite://var/alerts.db`` (relative) or ``sqlite:///abs/alerts.db``,
    ``memory://``, or a bare file path (SQLite)."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return BACKENDS["sqlite"](text)
    if scheme not in BACKENDS:
        raise ValueError(f"unknown alert store {scheme!r} in {text!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    if scheme == "sqlite" and not rest:
        raise ValueError("sqlite:// needs a path, e.g. sqlite://var/alerts.db")
    return BACKENDS[scheme](rest)
