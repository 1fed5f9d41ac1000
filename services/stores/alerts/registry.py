"""Alert-store backends by URL scheme: one line per backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.services.stores.alerts.base import AlertStore

if TYPE_CHECKING:
    from fraudstream.services.settings import Settings


def _sqlite(target: str, settings: Settings | None) -> AlertStore:
    from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore

    return SqliteAlertStore(target)


def _memory(target: str, settings: Settings | None) -> AlertStore:
    from fraudstream.services.stores.alerts.memory import MemoryAlertStore

    return MemoryAlertStore()


def _elasticsearch(target: str, settings: Settings | None) -> AlertStore:
    from fraudstream.services.stores.alerts.elasticsearch import ElasticsearchAlertStore

    return ElasticsearchAlertStore.from_url(target, _settings(settings).elasticsearch)


def _opensearch(target: str, settings: Settings | None) -> AlertStore:
    from fraudstream.services.stores.alerts.opensearch import OpenSearchAlertStore

    return OpenSearchAlertStore.from_url(target, _settings(settings).opensearch)


def _settings(settings: Settings | None) -> Settings:
    """The caller's settings, or (for a library user who passed none) the environment's and $FRAUDSTREAM_CONFIG's."""
    from fraudstream.services.settings import load_settings

    return settings if settings is not None else load_settings()


BACKENDS: dict[str, Callable[[str, Settings | None], AlertStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "elasticsearch": _elasticsearch,
    "opensearch": _opensearch,
}


def open_store(url: str | Path, settings: Settings | None = None) -> AlertStore:
    """Open the store named by ``url``: ``sqlite://var/alerts.db`` (relative) or ``sqlite:///abs/alerts.db``,
    ``memory://``, a bare file path (SQLite), ``elasticsearch://host:port[,host:port][?prefix=…&tls=1&…]`` or
    ``opensearch://…`` the same way (no host: the ``[elasticsearch]`` / ``[opensearch]`` section's ``url``;
    options in :mod:`fraudstream.services.stores.alerts.search_engine`). Hosts and credentials a URL does not
    carry come from ``settings`` (by default :func:`~fraudstream.services.settings.load_settings`)."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return BACKENDS["sqlite"](text, settings)
    if scheme not in BACKENDS:
        raise ValueError(f"unknown alert store {scheme!r} in {text!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    if scheme == "sqlite" and not rest:
        raise ValueError("sqlite:// needs a path, e.g. sqlite://var/alerts.db")
    return BACKENDS[scheme](rest, settings)
