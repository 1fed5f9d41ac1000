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


def _elasticsearch(target: str) -> AlertStore:
    from fraudstream.services.stores.alerts.elasticsearch import ElasticsearchAlertStore

    return ElasticsearchAlertStore.from_url(target)


def _opensearch(target: str) -> AlertStore:
    from fraudstream.services.stores.alerts.opensearch import OpenSearchAlertStore

    return OpenSearchAlertStore.from_url(target)


BACKENDS: dict[str, Callable[[str], AlertStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "elasticsearch": _elasticsearch,
    "opensearch": _opensearch,
}


def open_store(url: str | Path) -> AlertStore:
    """Open the store named by ``url``: ``sqlite://var/alerts.db`` (relative) or ``sqlite:///abs/alerts.db``,
    ``memory://``, a bare file path (SQLite), ``elasticsearch://host:port[,host:port][?prefix=…&tls=1&…]`` or
    ``opensearch://…`` the same way (no host: ``FRAUDSTREAM_ES_URL`` / ``FRAUDSTREAM_OPENSEARCH_URL``;
    options and credentials in :mod:`fraudstream.services.stores.alerts.search_engine`)."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return BACKENDS["sqlite"](text)
    if scheme not in BACKENDS:
        raise ValueError(f"unknown alert store {scheme!r} in {text!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    if scheme == "sqlite" and not rest:
        raise ValueError("sqlite:// needs a path, e.g. sqlite://var/alerts.db")
    return BACKENDS[scheme](rest)
