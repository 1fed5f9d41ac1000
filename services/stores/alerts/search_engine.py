"""What the Elasticsearch and OpenSearch alert stores share: mappings, queries, aggregations, bulk writes.

Both engines speak the same REST dialect for everything fraudstream needs, so the store is written
once here against a tiny :class:`Transport` (send one HTTP request, get the status and the decoded
JSON back); :mod:`.elasticsearch` and :mod:`.opensearch` only build their client and wrap it.

Layout in the engine, for a store with prefix ``P`` (``?prefix=``, default ``fraudstream``):

- ``P-alerts-YYYY.MM`` — alerts by the **event** month (so an alert always lands in the same index
  and old months can be dropped whole), all behind the alias ``P-alerts`` that every read uses;
- ``P-dead-letters``, ``P-label-events`` and ``P-runner-status`` — dead letters (keyed by source and
  position), the label audit trail and the runners' heartbeats;
- four composable index templates (``P-alerts``, ``P-dead-letters``, ``P-label-events``, ``P-runner-status``) with
  explicit, strict mappings, so indices are created by the first write that needs them.

Writes are bulk requests of at most ``bulk_docs`` documents / ``bulk_mb`` MB, keyed by
transaction_id. An alert is sent as a ``create`` (the fast path: most alerts are new); one that exists
already is sent again as an ``update`` whose doc never holds the label fields, so a replay rewrites
the alert and keeps its review. Connection errors, 429 and 5xx
answers (whole requests or single bulk items) are retried with exponential backoff for at most
``retry_seconds``, then :class:`StoreUnavailable` is raised; documents the engine refuses (a
latitude out of range, say) raise :class:`RejectedDocuments` after the rest of the batch is stored.
A runner can make a store give up sooner (:meth:`SearchEngineAlertStore.set_interrupt`): asked to stop,
it leaves retries at once and abandons a request still unanswered after ``STOP_GRACE_S``.

Free-text search is a substring match, like :meth:`AlertQuery.matches`: each reason is also a
keyword with the built-in ``lowercase`` normalizer (``reasons.keyword``, reasons up to 8,191
characters) and each query word becomes a ``*word*`` wildcard on it. (The engine lower-cases like
Java, the reference like Python: they differ only for a few letters such as "İ".)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec

from fraudstream.model.errors import ServiceError
from fraudstream.services.stores.alerts.base import (
    ENTITIES,
    GROUPINGS,
    HOUR_MS,
    MAX_STATUSES,
    UNLABELLED,
    Alert,
    AlertNotFound,
    AlertQuery,
    EntityStat,
    LabelEvent,
    Page,
    RejectedDocuments,
    RunnerStatus,
    StoreUnavailable,
    check_label,
    check_search,
    decode_cursor,
    encode_cursor,
)
from fraudstream.services.stores.dead_letters import DeadLetter

if TYPE_CHECKING:
    from fraudstream.services.settings import SearchEngineSection

__all__ = [
    "RejectedDocuments",
    "RequestFailed",
    "SearchEngineAlertStore",
    "SearchEngineSettings",
    "StoreUnavailable",
    "Transport",
    "TransportFailure",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


class RequestFailed(ServiceError, RuntimeError):
    """An error answer that retrying will not fix: bad credentials, a malformed request, a missing index.

    The other two failures are the alert-store interface's own (:mod:`.base`): :class:`StoreUnavailable`
    (no answer, or only 429/5xx, for ``retry_seconds``: nothing may be assumed stored, write it again
    later) and :class:`RejectedDocuments` (the engine refused some documents for good, e.g. a latitude
    of 123°; every other document of the batch is stored; ``rejected`` lists ``(transaction_id or
    dead-letter key, reason)``).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransportFailure(ServiceError):
    """Raised by a :class:`Transport` when no HTTP answer came back (refused, reset, timed out)."""


class Transport(Protocol):
    """One HTTP request to the engine; the only thing a backend module has to provide."""

    def request(
        self, method: str, path: str, params: Mapping[str, str] | None, body: bytes | None,
        content_type: str, timeout: float,
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)`` for any HTTP status; :class:`TransportFailure` if none came."""

    def close(self) -> None: ...


# --------------------------------------------------------------------------- settings

OPTIONS = {
    "prefix": "index and template name prefix (lower case)",
    "tls": "1 for https:// when the URL names hosts",
    "ca_certs": "CA certificate bundle (PEM) to verify the server with",
    "verify_certs": "0 to skip certificate verification (not for production)",
    "retry_seconds": "how long to retry an unreachable or overloaded engine before StoreUnavailable",
    "timeout": "seconds one request may take",
    "refresh": "false (default), wait_for or true: refresh policy of alert writes",
    "shards": "primary shards per index",
    "replicas": "replicas per index (default: 0 on one node, 1 with more: auto_expand 0-1)",
    "bulk_docs": "documents per bulk request at most",
    "bulk_mb": "megabytes per bulk request at most",
    "concurrency": "bulk requests in flight at once for a large batch",
}
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,150}")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false), got {value!r}")


@dataclass(frozen=True)
class SearchEngineSettings:
    """Where the engine is and how to talk to it; secrets come from the environment only."""

    urls: tuple[str, ...]
    prefix: str = "fraudstream"
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    retry_seconds: float = 30.0
    timeout: float = 30.0
    refresh: str = "false"
    shards: int = 1
    replicas: int | None = None
    bulk_docs: int = 2000
    bulk_bytes: int = 5 * 1024 * 1024
    concurrency: int = 2

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(f"prefix must be lower-case letters, digits, '-', '_' or '.', got {self.prefix!r}")
        if self.refresh not in ("false", "true", "wait_for"):
            raise ValueError(f"refresh must be false, true or wait_for, got {self.refresh!r}")
        if self.retry_seconds < 0 or self.timeout <= 0 or self.shards < 1 or self.bulk_docs < 1 or self.bulk_bytes < 1 or self.concurrency < 1:
            raise ValueError("retry_seconds must be >= 0; timeout, shards, bulk_docs, bulk_mb and concurrency must be > 0")
        if self.replicas is not None and self.replicas < 0:
            raise ValueError("replicas must be >= 0")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {url!r}")
            if parts.username or parts.password:
                raise ValueError("put credentials in the environment (…_USERNAME/…_PASSWORD or …_API_KEY), not in a URL")

    @classmethod
    def from_url(cls, rest: str, engine: SearchEngineSection) -> SearchEngineSettings:
        """Settings from the part of a store URL after ``scheme://`` plus the engine's settings section.

        ``rest`` is ``host:port[,host:port…][?option=value&…]`` (hosts: http, or https with ``tls=1``)
        or just ``?options``: then the hosts are the section's ``url`` (comma-separated full URLs).
        Credentials (``api_key``, or ``username`` and ``password``) come from the section only (the
        environment, see :mod:`fraudstream.services.settings`); ``ca_certs`` and ``verify_certs`` from the
        URL, else the section.

        >>> from fraudstream.services.settings import ElasticsearchSection
        >>> s = SearchEngineSettings.from_url("127.0.0.1:9200?prefix=test&tls=1", ElasticsearchSection())
        >>> s.urls, s.prefix
        (('https://127.0.0.1:9200',), 'test')
        >>> SearchEngineSettings.from_url("", ElasticsearchSection(url="https://a:9200,https://b:9200")).urls
        ('https://a:9200', 'https://b:9200')
        """
        credentials = f"{engine.env_name('username')}/{engine.env_name('password')} or {engine.env_name('api_key')}"
        location, _, query = rest.partition("?")
        location = location.strip("/")
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in OPTIONS:
                raise ValueError(f"unknown store option {key!r}; known: {', '.join(OPTIONS)}")
            options[key] = value
        if "@" in location:
            raise ValueError(f"put credentials in {credentials}, not in the store URL")
        if "/" in location:
            raise ValueError(f"the store URL names hosts only (host:port[,host:port]), not a path; index names come from ?prefix=, got {rest!r}")
        if location:
            scheme = "https" if _flag("tls", options.get("tls", "0")) else "http"
            urls = tuple(f"{scheme}://{host.strip()}" for host in location.split(",") if host.strip())
        else:
            urls = engine.urls
        verify = _flag("verify_certs", options["verify_certs"]) if "verify_certs" in options else engine.verify_certs
        replicas = options.get("replicas")
        return cls(
            urls=urls,
            prefix=options.get("prefix", "fraudstream"),
            api_key=engine.api_key.get_secret_value() if engine.api_key else None,
            username=engine.username or None,
            password=engine.password.get_secret_value() if engine.password else None,
            ca_certs=options.get("ca_certs", engine.ca_certs) or None,
            verify_certs=verify,
            retry_seconds=float(options.get("retry_seconds", 30)),
            timeout=float(options.get("timeout", 30)),
            refresh=options.get("refresh", "false"),
            shards=int(options.get("shards", 1)),
            replicas=int(replicas) if replicas is not None else None,
            bulk_docs=int(options.get("bulk_docs", 2000)),
            bulk_bytes=int(float(options.get("bulk_mb", 5)) * 1024 * 1024),
            concurrency=int(options.get("concurrency", 2)),
        )


# --------------------------------------------------------------------------- documents and mappings

MAX_KEYWORD_CHARS = 8191  # 4 bytes per character at most: stays under Lucene's 32,766-byte term limit
MAX_ID_BYTES = 512  # the engines refuse longer _id values
ALERT_FIELDS = (
    "transaction_id", "timestamp", "card_id", "merchant_id", "amount", "score", "threshold", "reasons",
    "model_version", "record", "label", "labelled_by", "labelled_at_ms", "label_note",
)
LABEL_FIELDS = ("label", "labelled_by", "labelled_at_ms", "label_note")
SORT_FIELDS = {"time": "timestamp", "score": "score", "amount": "amount"}
ENTITY_FIELDS = {"card": "card_id", "merchant": "merchant_id"}
RECORD_KEYWORDS = ("merchant_category", "country", "channel")

_KEYWORD: dict[str, Any] = {"type": "keyword"}
_SHORT_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
_EPOCH_MS: dict[str, Any] = {"type": "date", "format": "epoch_millis"}
_STORED_ONLY: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}

ALERT_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "transaction_id": _KEYWORD,
        "timestamp": _EPOCH_MS,
        "card_id": {"type": "keyword", "eager_global_ordinals": True},
        "merchant_id": {"type": "keyword", "eager_global_ordinals": True},
        "amount": {"type": "double"},
        "score": {"type": "double"},
        "threshold": {"type": "double"},
        # text for full-text queries; a lower-cased keyword per reason for substring search (see query_for)
        "reasons": {"type": "text", "fields": {"keyword": {"type": "keyword", "normalizer": "lowercase", "ignore_above": MAX_KEYWORD_CHARS}}},
        "model_version": _SHORT_KEYWORD,
        "record": _STORED_ONLY,  # the canonical transaction as JSON text: returned whole, never indexed
        "merchant_category": _SHORT_KEYWORD,
        "country": _SHORT_KEYWORD,
        "channel": _SHORT_KEYWORD,
        "hour": {"type": "integer"},
        "card_location": {"type": "geo_point"},
        "merchant_location": {"type": "geo_point"},
        "label": _KEYWORD,
        "labelled_by": _KEYWORD,
        "labelled_at_ms": _EPOCH_MS,
        "label_note": {"type": "text"},
    },
}
DEAD_LETTER_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "key": _KEYWORD,
        "source": _KEYWORD,
        "position": _KEYWORD,
        "field": _KEYWORD,
        "reason": {"type": "text"},
        "raw": _STORED_ONLY,
    },
}
LABEL_EVENT_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "transaction_id": _KEYWORD,
        "label": _KEYWORD,
        "analyst": _KEYWORD,
        "at_ms": _EPOCH_MS,
        "note": {"type": "text"},
        "recorded_ns": {"type": "long"},
    },
}
RUNNER_STATUS_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "runner": _KEYWORD,
        "at_ms": _EPOCH_MS,
        "started_at_ms": _EPOCH_MS,
        "read": {"type": "long"},
        "scored": {"type": "long"},
        "alerts": {"type": "long"},
        "dead_letters": {"type": "long"},
        "rows_per_s": {"type": "double"},
        "lag": {"type": "long"},
        "finished": {"type": "boolean"},
    },
}

_encoder = msgspec.json.Encoder()


def doc_id(key: str) -> str:
    """The document _id for a transaction_id or dead-letter key (hashed when too long for the engine)."""
    if len(key) * 4 <= MAX_ID_BYTES or len(key.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _location(record: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    lat, lon = record.get(f"{kind}_lat"), record.get(f"{kind}_lon")
    if lat is None or lon is None:
        return None
    return {"lat": lat, "lon": lon}  # out of range: the engine rejects the document, and we say so


def _record_keyword(value: Any) -> str | None:
    return str(value) if value else None  # like the reference: a missing or empty value is "unknown"


def alert_document(alert: Alert) -> dict[str, Any]:
    """The indexed form of an alert — every field but the label ones, so a rewrite keeps the review."""
    record = alert.record
    return {
        "transaction_id": alert.transaction_id,
        "timestamp": alert.timestamp_ms,
        "card_id": alert.card_id,
        "merchant_id": alert.merchant_id,
        "amount": alert.amount,
        "score": alert.score,
        "threshold": alert.threshold,
        "reasons": list(alert.reasons),
        "model_version": alert.model_version,
        "record": _encode_record(record),
        "merchant_category": _record_keyword(record.get("merchant_category")),
        "country": _record_keyword(record.get("country")),
        "channel": _record_keyword(record.get("channel")),
        "hour": alert.hour,
        "card_location": _location(record, "card"),
        "merchant_location": _location(record, "merchant"),
    }


def _encode_record(record: Mapping[str, Any]) -> str:
    try:
        return _encoder.encode(record).decode("utf-8")
    except (TypeError, OverflowError, UnicodeEncodeError):  # e.g. an int beyond 64 bits: the slow, general path
        import json

        return json.dumps(record, ensure_ascii=False, default=str)


def alert_from_source(source: Mapping[str, Any]) -> Alert:
    return Alert(
        transaction_id=source["transaction_id"],
        timestamp_ms=int(source["timestamp"]),
        card_id=source["card_id"],
        merchant_id=source["merchant_id"],
        amount=source["amount"],
        score=source["score"],
        threshold=source["threshold"],
        reasons=tuple(source["reasons"]),
        model_version=source["model_version"],
        record=msgspec.json.decode(source["record"]),
        label=source.get("label"),
        labelled_by=source.get("labelled_by"),
        labelled_at_ms=int(source["labelled_at_ms"]) if source.get("labelled_at_ms") is not None else None,
        label_note=source.get("label_note"),
    )


def dead_letter_document(letter: DeadLetter) -> dict[str, Any]:
    return {"key": letter.key(), "source": letter.source, "position": letter.position, "field": letter.field,
            "reason": letter.reason, "raw": letter.raw}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_MS = 24 * HOUR_MS


def month_of(timestamp_ms: int) -> str:
    """``YYYY.MM`` of an event time (UTC), the suffix of its alert index.

    >>> month_of(1_767_225_600_000), month_of(1_767_225_599_999)
    ('2026.01', '2025.12')
    """
    try:
        return (_EPOCH + timedelta(milliseconds=timestamp_ms)).strftime("%Y.%m")
    except OverflowError:
        return "0000.00"  # outside years 1-9999: one index for all of them


def month_end_ms(month: str) -> int | None:
    """Epoch ms where the month after a ``YYYY.MM`` month starts, or None for anything else.

    >>> month_end_ms("2025.12") == 1_767_225_600_000
    True
    """
    try:
        start = datetime.strptime(month, "%Y.%m").replace(tzinfo=timezone.utc)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    except ValueError:
        return None
    return (end - _EPOCH) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------- queries


def _escape_wildcard(word: str) -> str:
    return re.sub(r"([\\*?])", r"\\\1", word)


def query_for(query: AlertQuery | None) -> dict[str, Any]:
    """The engine query for :meth:`AlertQuery.matches` (a bool filter: no scoring)."""
    if query is None:
        return {"match_all": {}}
    filters: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    if query.card_id is not None:
        filters.append({"term": {"card_id": query.card_id}})
    if query.merchant_id is not None:
        filters.append({"term": {"merchant_id": query.merchant_id}})
    for name, low, high in (("score", query.min_score, query.max_score), ("amount", query.min_amount, query.max_amount)):
        bounds = {k: v for k, v in (("gte", low), ("lte", high)) if v is not None}
        if bounds:
            filters.append({"range": {name: bounds}})
    times = {k: v for k, v in (("gte", query.start_ms), ("lt", query.end_ms)) if v is not None}
    if times:
        filters.append({"range": {"timestamp": {**times, "format": "epoch_millis"}}})
    if query.label == UNLABELLED:
        must_not.append({"exists": {"field": "label"}})
    elif query.label is not None:
        filters.append({"term": {"label": query.label}})
    for word in query.words():  # substring of one reason, like matches(): a word never spans reasons
        filters.append({"wildcard": {"reasons.keyword": {"value": f"*{_escape_wildcard(word)}*"}}})
    if not filters and not must_not:
        return {"match_all": {}}
    return {"bool": {"filter": filters, "must_not": must_not}}


def _error_text(body: Any) -> str:
    """A one-line reason from an engine error body."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
            caused = error.get("caused_by")
            if isinstance(caused, Mapping):
                text += f" (caused by {caused.get('type')}: {caused.get('reason')})"
            return text
        return str(error)[:500]
    return str(body)[:500]


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _failed_shards(data: Any) -> str | None:
    failed = data.get("_shards", {}).get("failed", 0) if isinstance(data, Mapping) else 0
    return f"{failed} shard(s) did not answer" if failed else None


def _failed_gets(data: Any) -> str | None:
    """An mget that found the document is whole; one where some index could not look is not."""
    docs = data.get("docs", []) if isinstance(data, Mapping) else []
    if any(doc.get("found") for doc in docs):
        return None
    errors = [doc["error"] for doc in docs if "error" in doc and doc["error"].get("type") != "index_not_found_exception"]
    return f"{len(errors)} index(es) could not look: {_error_text({'error': errors[0]})}" if errors else None


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class _Op:
    """One document of a bulk request: its name in errors, its NDJSON lines, and what to send if it exists."""

    name: str
    lines: bytes
    fallback: bytes | None = None


STOP_GRACE_S = 1.0  # how long a request already sent may still finish once the caller wants to give up
_POLL_S = 0.05  # how often a waiting caller looks at its interrupt


class SearchEngineAlertStore:
    """An :class:`~fraudstream.services.stores.alerts.base.AlertStore` on Elasticsearch or OpenSearch."""

    engine = "search engine"  # set by the subclasses, for messages

    def __init__(self, transport: Transport, settings: SearchEngineSettings) -> None:
        self.transport = transport
        self.settings = settings
        prefix = settings.prefix
        self.alias = f"{prefix}-alerts"
        self.dead_letter_index = f"{prefix}-dead-letters"
        self.label_index = f"{prefix}-label-events"
        self.status_index = f"{prefix}-runner-status"
        self._ready = False
        self._months: dict[int, str] = {}  # day number → month suffix (a cache: most batches span a day or two)
        self._pool: ThreadPoolExecutor | None = None
        self._interrupt: Callable[[], bool] | None = None
        self.answered = False  # whether the engine ever sent an HTTP answer (any status): the URL is right
        self._down = False  # the last request got no usable answer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(urls={list(self.settings.urls)}, prefix={self.settings.prefix!r})"

    # ------------------------------------------------------------------ plumbing

    def set_interrupt(self, check: Callable[[], bool] | None) -> None:
        """Give up waiting (raise :class:`StoreUnavailable`) soon after ``check()`` turns true, whatever
        ``retry_seconds`` says: no more retries, and a request unanswered ``STOP_GRACE_S`` later is abandoned.

        For a runner asked to stop while the store is down: nothing it has not stored is committed, so it may
        leave at once. ``check`` must be cheap and thread-safe (reading a flag); None: the budget alone.
        """
        self._interrupt = check

    def _interrupted(self) -> bool:
        return self._interrupt is not None and self._interrupt()

    def _pause(self, seconds: float) -> None:
        """Sleep between attempts, waking early when interrupted."""
        if self._interrupt is None:
            time.sleep(seconds)
            return
        until = time.monotonic() + seconds
        while not self._interrupted() and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, _POLL_S))

    def _send(self, method: str, path: str, params: Mapping[str, str] | None, payload: bytes | None,
              content_type: str, timeout: float) -> tuple[int, Any]:
        """One transport request. With an interrupt set it runs on a daemon thread, so that a caller who
        gives up is not held by a connection that hangs (it is abandoned; the process may exit under it)."""
        if self._interrupt is None:
            return self.transport.request(method, path, params, payload, content_type, timeout)
        outcome: list[Any] = []
        done = threading.Event()

        def call() -> None:
            try:
                outcome.append(self.transport.request(method, path, params, payload, content_type, timeout))
            except BaseException as error:  # noqa: BLE001 (handed to the caller as is)
                outcome.append(error)
            finally:
                done.set()

        threading.Thread(target=call, name="fraudstream-store-request", daemon=True).start()
        abandon_at = None
        while not done.wait(_POLL_S):
            if abandon_at is None and self._interrupted():
                abandon_at = time.monotonic() + STOP_GRACE_S
            if abandon_at is not None and time.monotonic() >= abandon_at:
                raise TransportFailure(f"abandoned after {STOP_GRACE_S:.0f}s without an answer: giving up waiting")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None, *, ndjson: bool = False,
        incomplete: Callable[[Any], str | None] | None = None,
    ) -> tuple[int, Any]:
        """Send one request, retrying connection failures, 429 and 5xx with backoff for ``retry_seconds``
        (and successful answers that ``incomplete`` finds a fault with: a count must never be partial)."""
        payload = body if body is None or isinstance(body, bytes) else _encoder.encode(body)
        content_type = "application/x-ndjson" if ndjson else "application/json"
        budget = self.settings.retry_seconds
        started = time.monotonic()
        attempt = 0
        while True:
            if attempt == 0 and self._down and self._interrupted():  # e.g. a last heartbeat while stopping in an outage
                raise StoreUnavailable(f"{self.engine} at {', '.join(self.settings.urls)} is down and the caller "
                                       f"gave up waiting: {method} {path} not sent")
            remaining = started + budget - time.monotonic()
            timeout = min(self.settings.timeout, max(remaining, 1.0))
            try:
                status, data = self._send(method, path, params, payload, content_type, timeout)
            except TransportFailure as error:
                problem = f"no answer ({error})"
            else:
                self.answered = True
                fault = incomplete(data) if incomplete is not None and status < 300 else None
                if not _retryable(status) and not fault:
                    self._down = False
                    return status, data
                problem = fault or f"HTTP {status} ({_error_text(data)})"
            attempt += 1
            self._down = True
            remaining = started + budget - time.monotonic()
            interrupted = self._interrupted()
            if remaining <= 0 or interrupted:
                self._ready = False  # the node may come back empty: put the templates there again
                raise StoreUnavailable(
                    f"{self.engine} at {', '.join(self.settings.urls)} failed {method} {path} for "
                    f"{time.monotonic() - started:.1f}s ({attempt} attempts): {problem}"
                    + ("; gave up waiting" if interrupted else "")
                )
            delay = min(0.1 * 2 ** (attempt - 1), 5.0) * random.uniform(0.75, 1.25)
            log.warning("%s %s: %s; retrying in %.1fs", method, path, problem, min(delay, remaining))
            self._pause(min(delay, remaining))

    def _ok(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
            *, allow: Iterable[int] = (), incomplete: Callable[[Any], str | None] | None = None) -> tuple[int, Any]:
        """:meth:`_request`, raising :class:`RequestFailed` for an error answer not in ``allow``."""
        status, data = self._request(method, path, body, params, incomplete=incomplete)
        if status >= 400 and status not in allow:
            raise RequestFailed(f"{self.engine} refused {method} {path}: HTTP {status} {_error_text(data)}", status)
        return status, data

    def _templates(self) -> dict[str, tuple[list[str], dict[str, Any], dict[str, Any]]]:
        """Template name → (index patterns, mappings, aliases)."""
        p = self.settings.prefix
        return {
            f"{p}-alerts": ([f"{p}-alerts-*"], ALERT_MAPPINGS, {self.alias: {}}),
            f"{p}-dead-letters": ([self.dead_letter_index], DEAD_LETTER_MAPPINGS, {}),
            f"{p}-label-events": ([self.label_index], LABEL_EVENT_MAPPINGS, {}),
            f"{p}-runner-status": ([self.status_index], RUNNER_STATUS_MAPPINGS, {}),
        }

    def _index_settings(self) -> dict[str, Any]:
        replicas: dict[str, Any] = (
            {"number_of_replicas": self.settings.replicas} if self.settings.replicas is not None
            else {"auto_expand_replicas": "0-1"}
        )
        # search_after pages ask for limit + 1 hits; limit may be 10,000
        return {"index": {"number_of_shards": self.settings.shards, **replicas, "max_result_window": 10_001}}

    def _ensure_ready(self) -> None:
        """Put the index templates (idempotent); done once, and again after the engine was unreachable."""
        if self._ready:
            return
        settings = self._index_settings()
        for name, (patterns, mappings, aliases) in self._templates().items():
            template = {"settings": settings, "mappings": mappings, "aliases": aliases}
            status, data = self._request("PUT", f"/_index_template/{name}", {"index_patterns": patterns, "priority": 500, "template": template})
            if status in (404, 405):  # an engine without composable templates (before ES 7.8): the legacy API
                status, data = self._request("PUT", f"/_template/{name}", {"index_patterns": patterns, "order": 500, **template})
            if status >= 400:
                raise RequestFailed(f"{self.engine} refused the index template {name}: HTTP {status} {_error_text(data)}", status)
        self._ready = True

    def _alert_index(self, timestamp_ms: int) -> str:
        day = timestamp_ms // _DAY_MS
        month = self._months.get(day)
        if month is None:
            if len(self._months) > 10_000:
                self._months.clear()
            month = self._months[day] = month_of(timestamp_ms)
        return f"{self.settings.prefix}-alerts-{month}"

    def _read_params(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Reads go to aliases and indices that exist only after the first write: an absent one is empty.
        # A shard that is still recovering must fail the read (retried), never return part of the answer.
        return {"ignore_unavailable": "true", "allow_no_indices": "true", **(extra or {})}

    # ------------------------------------------------------------------ writes

    def write(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> None:
        """Store a batch; raises :class:`StoreUnavailable` or :class:`RejectedDocuments` if not all of it is stored.

        An alert goes in as ``create`` (the fast path: most alerts are new); when the engine says it
        exists, the same fields go again as an ``update`` with that doc, which leaves the label alone.
        """
        if not alerts and not dead_letters:
            return
        self._ensure_ready()
        encode = _encoder.encode
        ops: list[_Op] = []
        # The last copy of an alert (or letter) in a batch is the one that counts, as if written in turn;
        # with one copy per document the bulk requests are independent and can run side by side.
        for alert in {a.transaction_id: a for a in alerts}.values():
            meta = {"_index": self._alert_index(alert.timestamp_ms), "_id": doc_id(alert.transaction_id)}
            doc = encode(alert_document(alert))
            update = encode({"update": {**meta, "retry_on_conflict": 3}}) + b'\n{"doc":' + doc + b',"doc_as_upsert":true}\n'
            ops.append(_Op(alert.transaction_id, encode({"create": meta}) + b"\n" + doc + b"\n", update))
        for key, letter in {d.key(): d for d in dead_letters}.items():
            action = {"index": {"_index": self.dead_letter_index, "_id": doc_id(key)}}
            ops.append(_Op(key, encode(action) + b"\n" + encode(dead_letter_document(letter)) + b"\n"))
        # Split even a modest batch so that `concurrency` requests share it: the engine indexes them side by side.
        per_request = min(self.settings.bulk_docs, max(250, -(-len(ops) // self.settings.concurrency)))
        chunks = list(self._chunks(ops, per_request))
        if len(chunks) == 1 or self.settings.concurrency == 1:
            results = [self._store_chunk(chunk) for chunk in chunks]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="fraudstream-bulk")
            futures = [self._pool.submit(self._store_chunk, chunk) for chunk in chunks]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:  # after a failure, start no more chunks (each would wait out its own budget)
                future.cancel()
            wait(futures)
            results = [future.result() for future in futures]  # the first failure, if any, raises here
        rejected = [item for result in results for item in result]
        if rejected:
            raise RejectedDocuments(rejected)

    def _store_chunk(self, chunk: list[_Op]) -> list[tuple[str, str]]:
        """One bulk request, then the updates for the alerts it found existing; returns the refused documents."""
        rejected: list[tuple[str, str]] = []
        existing = self._bulk(chunk, rejected)
        for again in self._chunks(existing):
            self._bulk(again, rejected)
        return rejected

    def _chunks(self, ops: list[_Op], docs: int | None = None) -> Iterable[list[_Op]]:
        docs = docs or self.settings.bulk_docs
        chunk: list[_Op] = []
        size = 0
        for op in ops:
            if chunk and (len(chunk) >= docs or size + len(op.lines) > self.settings.bulk_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(op)
            size += len(op.lines)
        if chunk:
            yield chunk

    def _bulk(self, chunk: list[_Op], rejected: list[tuple[str, str]]) -> list[_Op]:
        """Send one bulk request and retry the items the engine could not take yet (429, 5xx, a version
        race); add refused items to ``rejected``; return the fallbacks of creates that found their document."""
        params = {"filter_path": "errors,items.*.status,items.*.error"}
        if self.settings.refresh != "false":
            params["refresh"] = self.settings.refresh
        started = time.monotonic()
        attempt = 0
        existing: list[_Op] = []
        while chunk:
            status, data = self._request("POST", "/_bulk", b"".join(op.lines for op in chunk), params, ndjson=True)
            if status >= 400:
                raise RequestFailed(f"{self.engine} refused a bulk request: HTTP {status} {_error_text(data)}", status)
            if not data.get("errors"):
                return existing
            items = data["items"]
            if len(items) != len(chunk):
                raise RequestFailed(f"{self.engine} answered {len(items)} bulk items for {len(chunk)} documents")
            again: list[_Op] = []
            for op, item in zip(chunk, items):
                result = next(iter(item.values()))
                if "error" not in result:
                    continue
                status = int(result.get("status", 500))
                if status == 409 and op.fallback is not None:
                    existing.append(_Op(op.name, op.fallback))
                elif status == 409 or _retryable(status):
                    again.append(op)
                else:
                    rejected.append((op.name, _error_text(result)))
            chunk = again
            if chunk:
                attempt += 1
                remaining = started + self.settings.retry_seconds - time.monotonic()
                if remaining <= 0 or self._interrupted():
                    raise StoreUnavailable(
                        f"{self.engine} kept refusing {len(chunk)} document(s) as overloaded or unavailable "
                        f"for {time.monotonic() - started:.1f}s, e.g. {chunk[0].name}"
                    )
                self._pause(min(0.1 * 2 ** (attempt - 1), 5.0, remaining))
        return existing

    def set_label(self, transaction_id: str, label: str, analyst: str, at_ms: int, note: str = "") -> Alert:
        """Append the decision to the audit trail, then make it the alert's label; both visible at once."""
        check_label(label)
        self._ensure_ready()
        found = self._locate(transaction_id)
        if found is None:
            raise AlertNotFound(transaction_id)
        index, source = found
        event = {"transaction_id": transaction_id, "label": label, "analyst": analyst, "at_ms": at_ms, "note": note,
                 "recorded_ns": time.time_ns()}
        event_id = hashlib.sha256("\0".join((transaction_id, str(at_ms), label, analyst, note)).encode("utf-8", "surrogatepass")).hexdigest()
        self._ok("PUT", f"/{self.label_index}/_doc/{event_id}", event, {"refresh": "true"})
        fields = {"label": label, "labelled_by": analyst, "labelled_at_ms": at_ms, "label_note": note}
        status, _ = self._ok("POST", f"/{index}/_update/{quote(doc_id(transaction_id), safe='')}", {"doc": fields},
                             {"refresh": "true", "retry_on_conflict": "5"}, allow=(404,))
        if status == 404:
            raise AlertNotFound(transaction_id)
        return alert_from_source({**source, **fields})

    # ------------------------------------------------------------------ reads

    def alert_indices(self) -> list[str]:
        """The alert indices behind the alias, oldest month first."""
        status, data = self._ok("GET", f"/_alias/{self.alias}", allow=(404,))
        return sorted(data) if status == 200 and isinstance(data, Mapping) else []

    def _locate(self, transaction_id: str) -> tuple[str, dict[str, Any]] | None:
        """(index, source) of an alert by a real-time get on each alert index (no refresh needed)."""
        indices = self.alert_indices()
        if not indices:
            return None
        did = doc_id(transaction_id)
        _, data = self._ok("POST", "/_mget", {"docs": [{"_index": index, "_id": did} for index in indices]},
                           {"_source_includes": ",".join(ALERT_FIELDS)}, incomplete=_failed_gets)
        for doc in data.get("docs", ()):
            if doc.get("found"):
                return doc["_index"], doc["_source"]
        return None

    def get(self, transaction_id: str) -> Alert | None:
        found = self._locate(transaction_id)
        return alert_from_source(found[1]) if found else None

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        _, data = self._ok("POST", f"/{index}/_search", body, self._read_params({"allow_partial_search_results": "false"}), incomplete=_failed_shards)
        return data

    def search(self, query: AlertQuery = AlertQuery(), sort: str = "time", limit: int = 50, cursor: str | None = None) -> Page:
        check_search(sort, limit)
        column = SORT_FIELDS[sort]
        body: dict[str, Any] = {
            "query": query_for(query),
            "sort": [{column: {"order": "desc"}}, {"transaction_id": {"order": "desc"}}],
            "size": limit + 1,
            "track_total_hits": True,
            "_source": list(ALERT_FIELDS),
        }
        if cursor is not None:
            body["search_after"] = list(decode_cursor(cursor, sort))
        hits = self._search(self.alias, body)["hits"]
        alerts = [alert_from_source(hit["_source"]) for hit in hits["hits"][:limit]]
        total = hits["total"]["value"] if isinstance(hits["total"], Mapping) else int(hits["total"])
        more = len(hits["hits"]) > limit
        return Page(alerts, int(total), encode_cursor(alerts[-1], sort) if more else None)

    def count_alerts(self, query: AlertQuery | None = None) -> int:
        _, data = self._ok("POST", f"/{self.alias}/_count", {"query": query_for(query)}, self._read_params(), incomplete=_failed_shards)
        return int(data["count"])

    def label_history(self, transaction_id: str) -> list[LabelEvent]:
        body = {
            "query": {"term": {"transaction_id": transaction_id}},
            "sort": [{"at_ms": "asc"}, {"recorded_ns": "asc"}],
            "size": 10_000,
        }
        hits = self._search(self.label_index, body)["hits"]["hits"]
        return [
            LabelEvent(s["transaction_id"], s["label"], s["analyst"], int(s["at_ms"]), s.get("note") or "")
            for s in (hit["_source"] for hit in hits)
        ]

    def _aggregate(self, query: AlertQuery, aggs: dict[str, Any]) -> dict[str, Any]:
        body = {"query": query_for(query), "size": 0, "track_total_hits": False, "aggs": aggs}
        return self._search(self.alias, body).get("aggregations") or {}

    def alerts_over_time(self, query: AlertQuery, interval_ms: int) -> list[tuple[int, int]]:
        if int(interval_ms) != interval_ms or interval_ms < 1:
            raise ValueError(f"interval_ms must be a positive whole number, got {interval_ms!r}")
        aggs = {"t": {"date_histogram": {"field": "timestamp", "fixed_interval": f"{int(interval_ms)}ms", "min_doc_count": 1}}}
        buckets = self._aggregate(query, aggs).get("t", {}).get("buckets", [])
        return [(int(b["key"]), int(b["doc_count"])) for b in buckets if b["doc_count"]]

    def top_entities(self, entity: str, query: AlertQuery, by: str = "count", limit: int = 10) -> list[EntityStat]:
        """Top cards or merchants. Like every terms aggregation over several indices, the ranking is merged
        from each index's own top list (``shard_size`` long): exact unless an entity's alerts are spread
        thin over many months; counts and amounts of the entities returned are exact."""
        if entity not in ENTITIES or by not in ("count", "amount"):
            raise ValueError(f"entity must be card or merchant and by count or amount, got {entity!r}, {by!r}")
        if limit < 1:
            return []
        field = ENTITY_FIELDS[entity]
        if by == "count":
            # Fast path: rank by count alone (the engine then sums amounts for the top buckets only), then
            # sum the winners. Only a tie on the count at the cut needs every entity's amount.
            terms = {"field": field, "size": limit + 1, "shard_size": max(limit * 10, 200)}
            ranked = self._aggregate(query, {"e": {"terms": terms}}).get("e", {}).get("buckets", [])
            if len(ranked) <= limit or ranked[limit]["doc_count"] < ranked[limit - 1]["doc_count"]:
                if not ranked:
                    return []
                keys = [b["key"] for b in ranked[:limit]]
                base = query_for(query)
                body = {
                    "query": {"bool": {"filter": [base, {"terms": {field: keys}}]}},
                    "size": 0, "track_total_hits": False,
                    "aggs": {"e": {"terms": {"field": field, "size": len(keys)}, "aggs": {"amount": {"sum": {"field": "amount"}}}}},
                }
                stats = [
                    EntityStat(str(b["key"]), int(b["doc_count"]), float(b["amount"]["value"]))
                    for b in self._search(self.alias, body).get("aggregations", {}).get("e", {}).get("buckets", [])
                ]
                stats.sort(key=lambda e: (e.alerts, e.amount, e.key), reverse=True)
                return stats[:limit]
        order = [{"_count": "desc"}, {"amount": "desc"}] if by == "count" else [{"amount": "desc"}, {"_count": "desc"}]
        terms = {"field": field, "size": limit, "shard_size": max(limit * 10, 200), "order": [*order, {"_key": "desc"}]}
        aggs = {"e": {"terms": terms, "aggs": {"amount": {"sum": {"field": "amount"}}}}}
        buckets = self._aggregate(query, aggs).get("e", {}).get("buckets", [])
        return [EntityStat(str(b["key"]), int(b["doc_count"]), float(b["amount"]["value"])) for b in buckets]

    def histogram(self, field: str, query: AlertQuery, edges: Sequence[float]) -> list[int]:
        if field not in ("score", "amount") or len(edges) < 2:
            raise ValueError("histogram needs field score or amount and at least two edges")
        last = len(edges) - 2
        ranges = [
            {"key": str(i), "from": float(edges[i]), "to": math.nextafter(float(edges[i + 1]), math.inf) if i == last else float(edges[i + 1])}
            for i in range(len(edges) - 1)
        ]
        aggs = {"h": {"range": {"field": field, "ranges": ranges, "keyed": False}}}
        counts = [0] * (len(edges) - 1)
        for bucket in self._aggregate(query, aggs).get("h", {}).get("buckets", []):
            counts[int(bucket["key"])] = int(bucket["doc_count"])
        return counts

    def count_by(self, field: str, query: AlertQuery) -> dict[str, int]:
        if field not in GROUPINGS:
            raise ValueError(f"field must be one of {', '.join(GROUPINGS)}, got {field!r}")
        if field == "hour":
            terms: dict[str, Any] = {"field": "hour", "size": 24}
        else:
            terms = {"field": field, "size": 10_000, "missing": "unknown"}
        buckets = self._aggregate(query, {"c": {"terms": terms}}).get("c", {}).get("buckets", [])
        if field == "hour":
            return {f"{int(b['key']):02d}": int(b["doc_count"]) for b in buckets}
        return {str(b["key"]): int(b["doc_count"]) for b in buckets}

    def count_dead_letters(self) -> int:
        _, data = self._ok("POST", f"/{self.dead_letter_index}/_count", {"query": {"match_all": {}}}, self._read_params(), incomplete=_failed_shards)
        return int(data["count"])

    def write_status(self, status: RunnerStatus) -> None:
        self._ensure_ready()
        did = doc_id(f"{status.runner}@{status.at_ms}")
        self._ok("PUT", f"/{self.status_index}/_doc/{quote(did, safe='')}", dataclasses.asdict(status))

    def runner_statuses(self, since_ms: int = 0) -> list[RunnerStatus]:
        body = {"query": {"range": {"at_ms": {"gte": since_ms}}}, "sort": [{"at_ms": "desc"}, {"runner": "desc"}],
                "size": MAX_STATUSES}
        hits = self._search(self.status_index, body)["hits"]["hits"]
        return [RunnerStatus(**hit["_source"]) for hit in reversed(hits)]

    def recent_alerts(self, limit: int = 20) -> list[Alert]:
        return self.search(AlertQuery(), "time", limit).alerts if limit > 0 else []

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit < 1:
            return []
        body = {"query": {"match_all": {}}, "sort": [{"key": "asc"}], "size": min(limit, 10_000)}
        hits = self._search(self.dead_letter_index, body)["hits"]["hits"]
        return [
            DeadLetter(s["source"], s["position"], s.get("field"), s["reason"], s["raw"])
            for s in (hit["_source"] for hit in hits)
        ]

    # ------------------------------------------------------------------ housekeeping

    def refresh(self) -> None:
        """Make every write so far visible to searches (the engines are near-real-time)."""
        indices = ",".join((self.alias, self.dead_letter_index, self.label_index, self.status_index))
        self._ok("POST", f"/{indices}/_refresh", None, self._read_params())

    def drop_alerts_before(self, timestamp_ms: int) -> list[str]:
        """Delete the monthly alert indices that end at or before ``timestamp_ms``; returns their names."""
        doomed = []
        for index in self.alert_indices():
            end = month_end_ms(index[len(self.alias) + 1:])
            if end is not None and end <= timestamp_ms:
                doomed.append(index)
        if doomed:
            self._ok("DELETE", f"/{','.join(doomed)}")
        return doomed

    def drop(self) -> None:
        """Delete this store's indices and templates (tests; a fresh start). Other prefixes are untouched."""
        p = self.settings.prefix
        _, data = self._ok("GET", f"/{p}-alerts-*,{self.dead_letter_index}*,{self.label_index}*,{self.status_index}*/_alias",
                           params={"expand_wildcards": "all", **self._read_params()})
        ours = re.compile(rf"{re.escape(p)}-(alerts-.+|dead-letters|label-events|runner-status)")
        indices = sorted(name for name in (data or {}) if ours.fullmatch(name))
        if indices:
            self._ok("DELETE", f"/{','.join(indices)}", allow=(404,))
        for name in self._templates():
            status, _ = self._request("DELETE", f"/_index_template/{name}")
            if status == 404 or status == 405:
                self._request("DELETE", f"/_template/{name}")
        self._ready = False

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.transport.close()
