"""Card and merchant feature state in Redis: one store shared by every API worker, Knative replica and Lambda container.

Layout: each card and each merchant is one Redis string, the msgpack of its state's ``to_list()``,
under ``<prefix>c:<card_id>`` and ``<prefix>m:<merchant_id>``; the newest event time is the score of
``newest`` in the sorted set ``<prefix>newest`` (``ZADD GT`` is an atomic maximum, so concurrent
writers never move it back, and no writer has to watch that one hot key).

**Atomic updates, optimistically.** An event is one Redis transaction: WATCH its card and merchant
keys and read them (with the newest time) in one round trip, run the same
:func:`~fraudstream.model.features.step.step` as every runner, in Python, on the decoded
:class:`~fraudstream.model.features.state.CardState` / ``MerchantState``, then ``MULTI``, ``SET`` both,
``ZADD GT``, ``EXEC`` in a second round trip. If any other client wrote either key in between, Redis
discards the ``EXEC`` and the event is recomputed from the new values: no update is lost, the card and
the merchant move together, and the result is the step over some serial order of the events. Why not
Lua: the step would need a second definition in Lua. Why not a lock per key: it costs more round
trips even when nobody competes (acquire, read, write, release) and a holder that dies blocks the key
until its lease ends; here contention costs only retries, measured under a skewed merchant
distribution by ``benchmarks/bench_redis_state.py`` (figures in the README, "State in Redis").
:meth:`RedisStateStore.features_many` does a whole chunk of events in one such transaction.

**Two expiries, one rule.** The protocol's TTL is in event time: an idle card or merchant starts
fresh at its next event, decided from event times alone (see :mod:`fraudstream.model.features.store`),
and :meth:`RedisStateStore.expire` drops idle keys by the same rule. Redis' own expiry only bounds
memory: every write sets ``PX expire_after_ms``, by default ``ttl_ms`` plus :data:`EXPIRY_MARGIN_MS`.
While event times follow the wall clock (live traffic, clocks within half the margin), a key Redis
drops had no event for longer than ``ttl_ms`` of event time, so its next event would start fresh
anyway and the drop changes no feature. Replaying history faster than real time only keeps keys
longer (``expire()`` sweeps them); a pause in all traffic longer than ``expire_after_ms`` of wall
time does drop keys the event-time rule still counts as active. Without a TTL nothing expires by
default (the ``maxmemory`` policy of ``scripts/services/redis`` then bounds memory, by evicting).

Errors: anything that stops Redis from serving (refused connection, socket timeout, a server error
such as out-of-memory, contention that outlasts ``max_attempts``) raises
:class:`~fraudstream.services.stores.state.errors.StateStoreUnavailable`, so the API can answer in
its degraded mode. Needs one Redis primary (cluster mode off: a transaction's keys must share a node).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from fraudstream.model.errors import require
from fraudstream.model.features.ids import NEW, remember_id
from fraudstream.model.features.state import DAY_MS, CardState, MerchantState
from fraudstream.model.features.step import step
from fraudstream.model.features.store import StateSizes, check_ttl
from fraudstream.services.stores.state.errors import StateStoreUnavailable

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

DEFAULT_URL = "redis://127.0.0.1:6379/0"
EXPIRY_MARGIN_MS = DAY_MS  # Redis keeps a key this much (wall time) past the event-time TTL
MAX_ATTEMPTS = 200  # optimistic attempts per transaction before giving up as unavailable
BATCH_EVENTS = 256  # events per transaction in features_many
SCAN_COUNT = 500  # keys per SCAN step and per MGET in sweeps and snapshots
_BACKOFF_BASE_S = 0.0002  # after the 2nd conflict, sleep a random time up to base * 2**attempt, capped:
_BACKOFF_CAP_S = 0.01  # spreads out clients that keep colliding on one hot key
_NEWEST = b"newest"

_encode = msgspec.msgpack.encode
_decode = msgspec.msgpack.decode
_UNSET: Any = object()


def _glob_escape(raw: bytes) -> bytes:
    """``raw`` with Redis' glob characters escaped, for SCAN MATCH."""
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


class RedisStateStore:
    """Every card's and merchant's feature state in one Redis, updated atomically (thread- and process-safe).

    ``ttl_ms``: the protocol's event-time TTL (None: keys never go idle). ``url``: the Redis to use
    (``redis://`` or ``rediss://``; a password belongs in the URL from the environment, never in
    code). ``prefix``: namespace of every key, so several stores share one Redis. ``socket_timeout``
    (seconds, also the connect timeout unless ``connect_timeout`` is given): how long a call may wait
    for Redis before raising :class:`StateStoreUnavailable` — keep it inside the API's latency budget.
    ``expire_after_ms``: Redis' PEXPIRE on every write (default: ``ttl_ms`` + a day; None without a
    TTL; see the module docstring). ``max_attempts``: optimistic retries before a contended event
    gives up. ``conflicts`` and ``commits`` count transactions retried and committed by this object.
    """

    thread_safe = True

    def __init__(
        self,
        ttl_ms: int | None = None,
        *,
        url: str = DEFAULT_URL,
        prefix: str = "fraudstream:",
        socket_timeout: float = 0.5,
        connect_timeout: float | None = None,
        expire_after_ms: int | None = _UNSET,
        max_attempts: int = MAX_ATTEMPTS,
        batch_events: int = BATCH_EVENTS,
        max_connections: int | None = None,
    ) -> None:
        redis = require("redis", "the Redis state store")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.ttl_ms = check_ttl(ttl_ms)
        if expire_after_ms is _UNSET:
            expire_after_ms = None if ttl_ms is None else ttl_ms + EXPIRY_MARGIN_MS
        if expire_after_ms is not None and ttl_ms is not None and expire_after_ms < ttl_ms:
            raise ValueError(f"expire_after_ms ({expire_after_ms}) must be at least ttl_ms ({ttl_ms}): "
                             "Redis would drop keys the event-time rule still counts as active")
        if max_attempts < 1 or batch_events < 1:
            raise ValueError("max_attempts and batch_events must be at least 1")
        self.expire_after_ms = expire_after_ms
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.batch_events = batch_events
        self.conflicts = 0
        self.commits = 0
        self._stats_lock = threading.Lock()
        raw = prefix.encode()
        self._card_prefix = raw + b"c:"
        self._merchant_prefix = raw + b"m:"
        self._newest_key = raw + _NEWEST
        self._px: tuple[bytes, ...] = () if expire_after_ms is None else (b"PX", str(expire_after_ms).encode())
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._response_error: type[BaseException] = redis.exceptions.ResponseError
        self._url_for_messages = url.split("@")[-1]  # never echo a password
        # No client-side retry: a Redis that is down must fail fast (the caller degrades), not retry for seconds.
        self._pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout if connect_timeout is None else connect_timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=max_connections,
        )
        self._client = redis.Redis(connection_pool=self._pool)

    # ---------------------------------------------------------------- the protocol

    def features(self, txn: Transaction) -> tuple[float, ...]:
        """Features of ``txn``; its card's and merchant's state move past it in one Redis transaction."""
        return self._transact([txn])[0]

    step = features

    def features_many(self, txns: Sequence[Transaction]) -> list[tuple[float, ...]]:
        """:meth:`features` of each of ``txns`` in order, ``batch_events`` events per Redis transaction."""
        out: list[tuple[float, ...]] = []
        size = self.batch_events
        for start in range(0, len(txns), size):
            out += self._transact(txns[start:start + size])
        return out

    def remember_id(self, txn: Transaction) -> int:
        """NEW, RETRY or CONFLICT for ``txn``'s id on its card; a NEW id is written in a transaction of its own."""
        key = self._card_prefix + txn.card_id.encode()
        for attempt in range(self.max_attempts):
            with self._connection() as conn:
                (_, value) = self._roundtrip(conn, [(b"WATCH", key), (b"GET", key)])
                card = CardState() if value is None else CardState.from_list(_decode(value))
                answer = remember_id(card, txn)
                if answer != NEW:  # a retry or a conflict changes nothing
                    self._roundtrip(conn, [(b"UNWATCH",)])
                    return answer
                if self._commit(conn, [(b"SET", key, _encode(card.to_list()), *self._px)]):
                    return answer
            self._backoff(attempt)
        raise self._contended()

    @property
    def newest_ms(self) -> int | None:
        """The newest event time any client folded in (None before the first)."""
        with self._translated():
            score = self._client.zscore(self._newest_key, _NEWEST)
        return None if score is None else int(score)

    def expire(self) -> int:
        """Drop the cards and merchants idle for more than ``ttl_ms`` of event time (the protocol's rule)."""
        if self.ttl_ms is None:
            return 0
        newest = self.newest_ms
        if newest is None:
            return 0
        idle_before = newest - self.ttl_ms
        dropped = 0
        for keys in self._scan_batches(self._card_prefix):
            dropped += self._drop_if(keys, lambda v: _card_idle(v, idle_before))
        for keys in self._scan_batches(self._merchant_prefix):
            dropped += self._drop_if(keys, lambda v: _merchant_idle(v, idle_before))
        return dropped

    def snapshot(self) -> dict[str, Any]:
        """Plain lists and dicts, as :class:`~fraudstream.model.features.keyed.FeatureState` gives them.

        Each key is read whole, but keys written while the scan runs may be seen before or after the write.
        """
        return {"cards": self._read_all(self._card_prefix), "merchants": self._read_all(self._merchant_prefix)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace everything under this prefix with ``snapshot``'s content (run it while no other client writes)."""
        self._delete_all()
        merchant_times = [m[0] for m in snapshot["merchants"].values() if m[0] is not None]
        with self._translated():
            pipe = self._client.pipeline(transaction=False)
            queued = 0
            for prefix, states in ((self._card_prefix, snapshot["cards"]), (self._merchant_prefix, snapshot["merchants"])):
                for key, values in states.items():
                    pipe.execute_command(b"SET", prefix + key.encode(), _encode(values), *self._px)
                    queued += 1
                    if queued % SCAN_COUNT == 0:
                        pipe.execute()
            if merchant_times:  # the newest event's merchant holds the newest time (as FeatureState.restore)
                pipe.execute_command(b"ZADD", self._newest_key, max(merchant_times), _NEWEST)
            pipe.execute()

    def sizes(self) -> StateSizes:
        """How many cards and merchants this prefix holds (a SCAN: O(keys in the Redis))."""
        return StateSizes(self._count(self._card_prefix), self._count(self._merchant_prefix))

    def __len__(self) -> int:
        return sum(self.sizes())

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.disconnect()

    def __enter__(self) -> RedisStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- the transaction

    def _transact(self, txns: Sequence[Transaction]) -> list[tuple[float, ...]]:
        """Step ``txns`` in order against their keys' current states and commit all of them, or retry."""
        if not txns:
            return []
        card_keys = list(dict.fromkeys(self._card_prefix + t.card_id.encode() for t in txns))
        merchant_keys = list(dict.fromkeys(self._merchant_prefix + t.merchant_id.encode() for t in txns))
        keys = card_keys + merchant_keys
        reads: list[tuple[Any, ...]] = [(b"WATCH", *keys), (b"MGET", *keys)]
        if self.ttl_ms is not None:
            reads.append((b"ZSCORE", self._newest_key, _NEWEST))
        for attempt in range(self.max_attempts):
            with self._connection() as conn:
                replies = self._roundtrip(conn, reads)
                values = replies[1]
                newest = None if self.ttl_ms is None or replies[2] is None else int(float(replies[2]))
                cards = {k: (None if v is None else CardState.from_list(_decode(v)))
                         for k, v in zip(card_keys, values[:len(card_keys)])}
                merchants = {k: (None if v is None else MerchantState.from_list(_decode(v)))
                             for k, v in zip(merchant_keys, values[len(card_keys):])}
                rows, newest = self._step_all(txns, cards, merchants, newest)
                writes = [(b"SET", key, _encode(state.to_list()), *self._px)  # type: ignore[union-attr]
                          for key, state in (*cards.items(), *merchants.items())]
                writes.append((b"ZADD", self._newest_key, b"GT", newest, _NEWEST))
                if self._commit(conn, writes):
                    return rows
            self._backoff(attempt)
        raise self._contended()

    def _step_all(self, txns: Sequence[Transaction], cards: dict[bytes, CardState | None],
                  merchants: dict[bytes, MerchantState | None], newest: int | None) -> tuple[list[tuple[float, ...]], int]:
        """The step over ``txns`` on the decoded states, with the protocol's fresh start of idle keys
        (the same rule as :class:`~fraudstream.model.features.keyed.FeatureState`); the rows and the newest time."""
        rows = []
        ttl = self.ttl_ms
        card_prefix, merchant_prefix = self._card_prefix, self._merchant_prefix
        for txn in txns:
            t = txn.timestamp_ms
            if newest is None or t > newest:
                newest = t
            card_key = card_prefix + txn.card_id.encode()
            merchant_key = merchant_prefix + txn.merchant_id.encode()
            card, merchant = cards[card_key], merchants[merchant_key]
            if ttl is not None:
                idle_before = newest - ttl
                if card is not None and card.t is not None and card.t < idle_before:
                    ids = card.ids
                    card = CardState()
                    card.ids = ids  # the id memory has its own window; this event's id may be in it
                if merchant is not None and merchant.t is not None and merchant.t < idle_before:
                    merchant = None
            if card is None:
                card = CardState()
            if merchant is None:
                merchant = MerchantState()
            cards[card_key], merchants[merchant_key] = card, merchant
            rows.append(step(card, merchant, txn))
        assert newest is not None
        return rows, newest

    def _commit(self, conn: Any, writes: list[tuple[Any, ...]]) -> bool:
        """MULTI, ``writes``, EXEC on ``conn`` (which holds a WATCH); False when a watched key changed."""
        try:
            replies = self._roundtrip(conn, [(b"MULTI",), *writes, (b"EXEC",)], raise_on_error=False)
        except StateStoreUnavailable as error:
            raise StateStoreUnavailable(f"{error} (the commit's reply was lost: it may or may not have been applied)") from error
        for reply in replies[:-1]:
            if isinstance(reply, Exception):  # a command refused at queueing (e.g. out of memory): EXEC aborts
                raise self._unavailable(reply)
        result = replies[-1]
        if isinstance(result, Exception):
            raise self._unavailable(result)
        with self._stats_lock:
            if result is None:
                self.conflicts += 1
            else:
                self.commits += 1
        return result is not None

    def _roundtrip(self, conn: Any, commands: list[tuple[Any, ...]], raise_on_error: bool = True) -> list[Any]:
        """Send ``commands`` in one write and read every reply (server errors returned, or raised)."""
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except self._response_error as error:
                    replies.append(error)
        except self._errors as error:
            conn.disconnect()
            raise self._unavailable(error) from error
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    conn.disconnect()  # drop the connection's WATCH state with it
                    raise self._unavailable(reply)
        return replies

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; dropped rather than reused if the block fails (it may hold a WATCH)."""
        try:
            conn = self._pool.get_connection()
        except self._errors as error:
            raise self._unavailable(error) from error
        try:
            yield conn
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._pool.release(conn)

    def _backoff(self, attempt: int) -> None:
        """Retry at once after a first conflict; after more, wait a random, growing, capped moment."""
        if attempt:
            time.sleep(random.random() * min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** attempt))

    # ---------------------------------------------------------------- scans

    def _scan_batches(self, prefix: bytes) -> Iterator[list[bytes]]:
        """Every key under ``prefix``, in lists of up to :data:`SCAN_COUNT`."""
        batch: list[bytes] = []
        with self._translated():
            for key in self._client.scan_iter(match=_glob_escape(prefix) + b"*", count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= SCAN_COUNT:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _count(self, prefix: bytes) -> int:
        return sum(len(keys) for keys in self._scan_batches(prefix))

    def _read_all(self, prefix: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        start = len(prefix)
        for keys in self._scan_batches(prefix):
            with self._translated():
                values = self._client.mget(keys)
            for key, value in zip(keys, values):
                if value is not None:  # deleted since the scan saw it
                    out[key[start:].decode()] = _decode(value)
        return out

    def _drop_if(self, keys: list[bytes], idle: Any) -> int:
        """Delete those of ``keys`` whose value ``idle`` accepts, re-checked under WATCH so a concurrent
        update keeps its key."""
        with self._translated():
            candidates = [k for k, v in zip(keys, self._client.mget(keys)) if v is not None and idle(_decode(v))]
        for attempt in range(self.max_attempts):
            if not candidates:
                return 0
            with self._connection() as conn:
                (_, values) = self._roundtrip(conn, [(b"WATCH", *candidates), (b"MGET", *candidates)])
                doomed = [k for k, v in zip(candidates, values) if v is not None and idle(_decode(v))]
                if not doomed:
                    self._roundtrip(conn, [(b"UNWATCH",)])
                    return 0
                if self._commit(conn, [(b"DEL", *doomed)]):
                    return len(doomed)
            candidates = doomed
            self._backoff(attempt)
        raise self._contended()

    def _delete_all(self) -> None:
        with self._translated():
            self._client.delete(self._newest_key)
        for prefix in (self._card_prefix, self._merchant_prefix):
            for keys in self._scan_batches(prefix):
                with self._translated():
                    self._client.unlink(*keys)

    # ---------------------------------------------------------------- errors

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Redis client errors as :class:`StateStoreUnavailable`."""
        try:
            yield
        except self._errors as error:
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> StateStoreUnavailable:
        return StateStoreUnavailable(f"the Redis state store at {self._url_for_messages} is unavailable: "
                                     f"{type(error).__name__}: {error}")

    def _contended(self) -> StateStoreUnavailable:
        return StateStoreUnavailable(f"the Redis state store at {self._url_for_messages} stayed contended: "
                                     f"{self.max_attempts} attempts conflicted with other writers")


def _card_idle(values: list[Any], idle_before: int) -> bool:
    """The protocol's sweep rule for a card: idle, and no remembered id newer than the horizon (admitted, not yet stepped)."""
    card = CardState.from_list(values)
    return (card.t is None or card.t < idle_before) and all(seen[0] < idle_before for seen in card.ids.values())


def _merchant_idle(values: list[Any], idle_before: int) -> bool:
    return values[0] is not None and values[0] < idle_before
