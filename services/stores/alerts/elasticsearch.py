"""The Elasticsearch alert store: the shared search-engine store over the official ``elasticsearch`` client.

Open it with ``open_store("elasticsearch://127.0.0.1:9200?prefix=fraudstream")``; see
:mod:`fraudstream.services.stores.alerts.search_engine` for the layout and
:meth:`SearchEngineSettings.from_url` for the URL. Settings (section ``[elasticsearch]`` of
:mod:`fraudstream.services.settings`, or the environment): ``FRAUDSTREAM_ES_URL`` (hosts when
the URL names none; default ``http://127.0.0.1:9200``), ``FRAUDSTREAM_ES_API_KEY`` or
``FRAUDSTREAM_ES_USERNAME`` + ``FRAUDSTREAM_ES_PASSWORD``, ``FRAUDSTREAM_ES_CA_CERTS``,
``FRAUDSTREAM_ES_VERIFY_CERTS``. The client's major version must equal the server's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraudstream.model.errors import require
from fraudstream.services.settings import ElasticsearchSection, SearchEngineSection
from fraudstream.services.stores.alerts.search_engine import (
    RequestFailed,
    SearchEngineAlertStore,
    SearchEngineSettings,
    TransportFailure,
)


class ElasticsearchTransport:
    """:class:`~.search_engine.Transport` over an ``elasticsearch.Elasticsearch`` client (its own retries off)."""

    def __init__(self, settings: SearchEngineSettings) -> None:
        elasticsearch = require("elasticsearch", "the Elasticsearch alert store")
        self._errors = elasticsearch
        options: dict[str, Any] = {
            "request_timeout": settings.timeout,
            "max_retries": 0,  # the store retries, with a time budget, so that failures surface in bounded time
            "retry_on_timeout": False,
            "retry_on_status": (),
            "verify_certs": settings.verify_certs,
        }
        if settings.ca_certs:
            options["ca_certs"] = settings.ca_certs
        if settings.api_key:
            options["api_key"] = settings.api_key
        elif settings.username:
            options["basic_auth"] = (settings.username, settings.password or "")
        self.client = elasticsearch.Elasticsearch(list(settings.urls), **options)

    def request(
        self, method: str, path: str, params: Mapping[str, str] | None, body: bytes | None,
        content_type: str, timeout: float,
    ) -> tuple[int, Any]:
        errors = self._errors
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = content_type
        try:
            response = self.client.options(request_timeout=timeout).perform_request(
                method, path, params=params or None, headers=headers, body=body
            )
        except errors.UnsupportedProductError as error:
            raise RequestFailed(f"not an Elasticsearch server (an OpenSearch one? use opensearch://): {error}") from error
        except errors.ApiError as error:
            return int(error.meta.status), error.body
        except errors.TransportError as error:
            if isinstance(error, errors.SSLError):  # a certificate problem does not go away by waiting
                raise RequestFailed(f"TLS failure talking to Elasticsearch: {error}") from error
            raise TransportFailure(str(error) or type(error).__name__) from error
        return int(response.meta.status), response.body

    def close(self) -> None:
        self.client.close()


class ElasticsearchAlertStore(SearchEngineAlertStore):
    """Alerts, labels and dead letters in Elasticsearch (monthly indices behind an alias)."""

    engine = "Elasticsearch"

    @classmethod
    def from_url(cls, rest: str = "", engine: SearchEngineSection | None = None) -> ElasticsearchAlertStore:
        """From the part of an ``elasticsearch://`` URL after the scheme, e.g. ``127.0.0.1:9200?prefix=x``."""
        settings = SearchEngineSettings.from_url(rest, engine if engine is not None else ElasticsearchSection())
        return cls(ElasticsearchTransport(settings), settings)
