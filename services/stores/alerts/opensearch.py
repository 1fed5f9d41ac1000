"""The OpenSearch alert store: the shared search-engine store over the ``opensearch-py`` client.

Open it with ``open_store("opensearch://127.0.0.1:9201?prefix=fraudstream")``; see
:mod:`fraudstream.services.stores.alerts.search_engine` for the layout and
:meth:`SearchEngineSettings.from_url` for the URL. Settings (section ``[opensearch]`` of
:mod:`fraudstream.services.settings`, or the environment): ``FRAUDSTREAM_OPENSEARCH_URL``
(hosts when the URL names none; default ``http://127.0.0.1:9201``, where scripts/services/opensearch
puts its node), ``FRAUDSTREAM_OPENSEARCH_USERNAME`` + ``FRAUDSTREAM_OPENSEARCH_PASSWORD`` (or
``FRAUDSTREAM_OPENSEARCH_API_KEY``, sent as ``Authorization: ApiKey …``),
``FRAUDSTREAM_OPENSEARCH_CA_CERTS``, ``FRAUDSTREAM_OPENSEARCH_VERIFY_CERTS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraudstream.model.errors import require
from fraudstream.services.settings import OpenSearchSection, SearchEngineSection
from fraudstream.services.stores.alerts.search_engine import (
    RequestFailed,
    SearchEngineAlertStore,
    SearchEngineSettings,
    TransportFailure,
)


class OpenSearchTransport:
    """:class:`~.search_engine.Transport` over an ``opensearchpy.OpenSearch`` client (its own retries off)."""

    def __init__(self, settings: SearchEngineSettings) -> None:
        opensearchpy = require("opensearchpy", "the OpenSearch alert store")
        self._errors = opensearchpy.exceptions
        options: dict[str, Any] = {
            "timeout": settings.timeout,
            "max_retries": 0,  # the store retries, with a time budget, so that failures surface in bounded time
            "retry_on_timeout": False,
            "retry_on_status": (),
            "verify_certs": settings.verify_certs,
            "ssl_show_warn": settings.verify_certs,
        }
        if settings.ca_certs:
            options["ca_certs"] = settings.ca_certs
        if settings.api_key:
            options["headers"] = {"authorization": f"ApiKey {settings.api_key}"}
        elif settings.username:
            options["http_auth"] = (settings.username, settings.password or "")
        self.client = opensearchpy.OpenSearch(list(settings.urls), **options)

    def request(
        self, method: str, path: str, params: Mapping[str, str] | None, body: bytes | None,
        content_type: str, timeout: float,
    ) -> tuple[int, Any]:
        errors = self._errors
        headers = {"accept": "application/json", "content-type": content_type}
        try:
            data = self.client.transport.perform_request(
                method, path, params=dict(params or {}), body=body, headers=headers, timeout=timeout
            )
        except errors.SSLError as error:  # a certificate problem does not go away by waiting
            raise RequestFailed(f"TLS failure talking to OpenSearch: {error}") from error
        except errors.ConnectionError as error:  # refused, reset, timed out (ConnectionTimeout included)
            raise TransportFailure(str(error) or type(error).__name__) from error
        except errors.TransportError as error:
            status = error.status_code
            if not isinstance(status, int):
                raise TransportFailure(str(error)) from error
            return status, error.info
        return 200, data

    def close(self) -> None:
        self.client.close()


class OpenSearchAlertStore(SearchEngineAlertStore):
    """Alerts, labels and dead letters in OpenSearch (monthly indices behind an alias)."""

    engine = "OpenSearch"

    @classmethod
    def from_url(cls, rest: str = "", engine: SearchEngineSection | None = None) -> OpenSearchAlertStore:
        """From the part of an ``opensearch://`` URL after the scheme, e.g. ``127.0.0.1:9201?prefix=x``."""
        settings = SearchEngineSettings.from_url(rest, engine if engine is not None else OpenSearchSection())
        return cls(OpenSearchTransport(settings), settings)
