"""Send transactions to a Kafka topic at a controlled rate, counting what the brokers acknowledged.

:func:`produce_rows` sends each row as compact JSON keyed by its ``card_id`` (so one card's events
land in one partition, in order); :func:`produce_raw` sends arbitrary ``(key, value)`` bytes (tests
use it to inject malformed messages). Both count deliveries from the brokers' answers, not from
``send()`` returning: a message is *sent* once acknowledged, *failed* once its future fails, and
``flush()`` at the end waits for every answer. Neither validates: the consumer side does that and
dead-letters what is wrong.

Pacing uses absolute deadlines: message *i* is due at ``start + i / rate``, so a slow send or a
late wake-up is caught up on the next message instead of pushing every later one back — N messages
at rate R take (N - 1) / R seconds.

``producer=`` accepts any object with kafka-python's ``send(topic, value=, key=)`` (returning a
future with ``add_callback`` / ``add_errback``) and ``flush()``; :class:`MemoryProducer` is such an
object, for unit tests and docs:

>>> fake = MemoryProducer()
>>> rows = [{"transaction_id": "t1", "card_id": "c1", "amount": 5.0}, {"transaction_id": "t2"}]
>>> stats = produce_rows(rows, KafkaSettings(), "transactions", producer=fake)
>>> stats.sent, stats.failed, fake.messages[0][1], fake.messages[1][1]
(2, 0, b'c1', None)
>>> fake.messages[0][2]
b'{"transaction_id":"t1","card_id":"c1","amount":5.0}'
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fraudstream.model.errors import require
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.kafka.topics import BOOTSTRAP_TIMEOUT_MS, KafkaUnavailable, unreachable

__all__ = [
    "ACKS",
    "MemoryProducer",
    "ProduceStats",
    "encode_row",
    "make_producer",
    "parse_acks",
    "produce_raw",
    "produce_rows",
]

ACKS = ("all", "1", "0")
PROGRESS_EVERY_S = 0.25  # how often on_progress is called (and once at the end)
FLUSH_TIMEOUT_S = 300.0  # longer than kafka-python's delivery timeout (120 s): every future resolves first
CLOSE_TIMEOUT_S = 10.0  # after the flush there is nothing left to wait for; bounded if the flush was cut short
# Throughput without hurting a paced stream: a batch waits at most 5 ms for company.
LINGER_MS = 5
BATCH_SIZE = 256 * 1024
UNDELIVERED = "not acknowledged when the producer was flushed"
FLUSH_QUIET_ROUNDS = 10  # flushes in a row (20 ms apart) with no new answer before the rest count as failed

Message = tuple[bytes | None, bytes] | tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value[, headers]
# "<run>:<row>" on every row produce_rows sends: its place in the file, so that the Kafka runner's merchant stage
# merges a replayed file back into file order (services/runners/kafka_stages.py). <run> is the send's start in
# epoch ms, so a later replay into the same topic orders after an earlier one.
ORDER_HEADER = "fraudstream.order"


@dataclass
class ProduceStats:
    """What happened to the messages of one run (counts are final once the call returns)."""

    queued: int = 0  # handed to the producer
    sent: int = 0  # acknowledged by the cluster (with acks=0: written to the socket)
    failed: int = 0  # refused by send() or failed by the cluster
    errors: Counter[str] = field(default_factory=Counter)  # failures by reason (the error's type)
    examples: dict[str, str] = field(default_factory=dict)  # the first full message per reason
    elapsed_s: float = 0.0  # from the first send to the end of the flush
    stopped: bool = False  # a stop was asked for before the input ran out

    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def pending(self) -> int:
        """Queued but not yet answered."""
        return self.queued - self.sent - self.failed

    def describe_errors(self, top: int = 5) -> str:
        """``"KafkaTimeoutError ×3 (e.g. ...); ..."`` for a summary line; empty without failures."""
        return "; ".join(
            f"{reason} ×{count:,} (e.g. {self.examples.get(reason, reason)})"
            for reason, count in self.errors.most_common(top)
        )


def parse_acks(acks: str | int) -> int | str:
    """kafka-python's value for ``--acks``: ``"all"`` (the default), ``1`` or ``0``; ValueError otherwise.

    >>> parse_acks("all"), parse_acks("1"), parse_acks(-1)
    ('all', 1, 'all')
    """
    text = str(acks).strip().lower()
    if text in ("all", "-1"):
        return "all"
    if text in ("1", "0"):
        return int(text)
    raise ValueError(f"--acks must be one of {', '.join(ACKS)}, got {acks!r}")


def make_producer(settings: KafkaSettings, acks: str | int = "all", compression: str | None = None) -> Any:
    """A ``KafkaProducer`` tuned for throughput that keeps each card's messages in order.

    acks=all: idempotent (no duplicates or reordering on retry, up to 5 requests in flight).
    acks=1/0: idempotence needs acks=all, so one request in flight per broker keeps the order.
    Raises :class:`KafkaUnavailable` if no broker answers.
    """
    KafkaProducer = require("kafka", "producing to Kafka").KafkaProducer

    value = parse_acks(acks)
    options: dict[str, Any] = {
        "acks": value,
        "linger_ms": LINGER_MS,
        "batch_size": BATCH_SIZE,
        "compression_type": compression,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    if value == "all":
        options["enable_idempotence"] = True
    else:
        options.update(enable_idempotence=False, max_in_flight_requests_per_connection=1)
    try:
        return KafkaProducer(**settings.client_kwargs(), **options)
    except Exception as error:
        if unreachable(error):
            raise KafkaUnavailable(settings.bootstrap) from error
        raise


_encode = msgspec.json.Encoder().encode


def encode_row(row: dict[str, Any]) -> Message:
    """``(key, value)`` of a row: its ``card_id`` as UTF-8 (None if missing or empty), compact JSON.

    >>> encode_row({"card_id": 42, "amount": 1.5})
    (b'42', b'{"card_id":42,"amount":1.5}')
    """
    card = row.get("card_id")
    key = None if card is None or card == "" else str(card).encode()
    return key, _encode(row)


def produce_rows(
    rows: Iterable[dict[str, Any]],
    settings: KafkaSettings,
    topic: str,
    *,
    rate: float | None = None,
    acks: str | int = "all",
    on_progress: Callable[[ProduceStats], None] | None = None,
    producer: Any = None,
    compression: str | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> ProduceStats:
    """Send every row to ``topic`` as JSON keyed by ``card_id``, with its place in ``rows`` (:data:`ORDER_HEADER`);
    see :func:`produce_raw` for the rest.

    A row that cannot be encoded as JSON counts as failed (reason ``unencodable``), not as an error.
    """
    stats = ProduceStats()
    run = int(time.time() * 1000)

    def messages() -> Iterator[Message | BaseException]:
        for index, row in enumerate(rows):
            try:
                key, value = encode_row(row)
                yield key, value, [(ORDER_HEADER, f"{run}:{index}".encode())]
            except (TypeError, ValueError) as error:  # a type JSON lacks, a lone surrogate (UnicodeError)
                yield error

    return _produce(messages(), settings, topic, stats, rate=rate, acks=acks, on_progress=on_progress,
                    producer=producer, compression=compression, stop=stop, clock=clock, sleep=sleep)


def produce_raw(
    messages: Iterable[Message],
    settings: KafkaSettings,
    topic: str,
    *,
    rate: float | None = None,
    acks: str | int = "all",
    on_progress: Callable[[ProduceStats], None] | None = None,
    producer: Any = None,
    compression: str | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> ProduceStats:
    """Send ``(key, value)`` byte pairs to ``topic`` in order, at ``rate`` per second (None or 0: at once).

    ``producer`` is used as given and left open; without one, a producer is made from ``settings``
    and ``acks`` (:func:`make_producer`, :class:`KafkaUnavailable` if no broker answers) and closed.
    ``on_progress(stats)`` is called every :data:`PROGRESS_EVERY_S` seconds and once at the end.
    ``stop`` (an Event) ends the run early, after flushing what was sent; ``clock`` and ``sleep``
    are injectable for tests (``sleep`` defaults to ``stop.wait`` so a stop wakes a long pause).
    """
    return _produce(iter(messages), settings, topic, ProduceStats(), rate=rate, acks=acks,
                    on_progress=on_progress, producer=producer, compression=compression, stop=stop,
                    clock=clock, sleep=sleep)


def _produce(
    messages: Iterator[Message | BaseException],
    settings: KafkaSettings,
    topic: str,
    stats: ProduceStats,
    *,
    rate: float | None,
    acks: str | int,
    on_progress: Callable[[ProduceStats], None] | None,
    producer: Any,
    compression: str | None,
    stop: threading.Event | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None] | None,
) -> ProduceStats:
    if rate is not None and not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be a positive number (or 0 for as fast as possible), got {rate}")
    parse_acks(acks)
    own = producer is None
    if own:
        producer = make_producer(settings, acks, compression)
    if sleep is None:
        sleep = stop.wait if stop is not None else time.sleep
    # The first send() of a topic waits for its metadata; wait here instead, before the pacing clock starts.
    partitions_for = getattr(producer, "partitions_for", None)
    if partitions_for is not None:
        try:
            partitions_for(topic)
        except BaseException:
            if own:
                producer.close(timeout=CLOSE_TIMEOUT_S)
            raise
    interval = 1.0 / rate if rate else 0.0
    lock = threading.Lock()  # delivery callbacks run on the producer's I/O thread

    def delivered(_metadata: Any) -> None:
        with lock:
            stats.sent += 1

    def failed(error: BaseException) -> None:
        with lock:
            _count_failure(stats, error)

    start: float | None = None  # the clock at the first message: reading ahead of it is not paced
    next_report = 0.0
    try:
        for index, message in enumerate(messages):
            if start is None:
                start = clock()
                next_report = start + PROGRESS_EVERY_S
            if stop is not None and stop.is_set():
                stats.stopped = True
                break
            if interval:
                due = start + index * interval  # an absolute deadline: lateness never accumulates
                while (wait := due - clock()) > 0 and not (stop is not None and stop.is_set()):
                    sleep(wait)
                if stop is not None and stop.is_set():
                    stats.stopped = True
                    break
            stats.queued += 1
            if isinstance(message, BaseException):
                with lock:
                    _count_failure(stats, message, "unencodable")
                continue
            key, value, *headers = message
            try:
                future = producer.send(topic, value=value, key=key, headers=headers[0] if headers else None)
            except Exception as error:  # refused before queueing: too large, no metadata in time, closed
                with lock:
                    _count_failure(stats, error)
            else:
                future.add_callback(delivered)
                future.add_errback(failed)
            if on_progress is not None:
                now = clock()
                if now >= next_report:
                    stats.elapsed_s = now - start
                    on_progress(stats)
                    next_report = now + PROGRESS_EVERY_S
    finally:
        try:
            _flush(producer, stats, lock)
            if start is not None:
                stats.elapsed_s = clock() - start
        finally:
            if own:
                producer.close(timeout=CLOSE_TIMEOUT_S)
    if on_progress is not None:
        on_progress(stats)
    return stats


def _flush(producer: Any, stats: ProduceStats, lock: threading.Lock) -> None:
    """Wait for every answer; whatever is still unanswered after that counts as failed.

    One ``flush()`` is not always enough: kafka-python splits a batch the broker found too large
    into new batches that a flush already under way does not wait for (and may then raise
    ``UnknownError('Future not done')``), so flush again while answers keep coming.
    """
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    last_error: BaseException | None = None
    quiet_rounds, before = 0, -1
    while True:
        try:
            producer.flush(timeout=max(0.001, deadline - time.monotonic()))
        except Exception as error:  # a timeout, or the split-batch case above
            last_error = error
        with lock:
            pending = stats.pending
        if pending <= 0 or time.monotonic() >= deadline:
            break
        quiet_rounds = quiet_rounds + 1 if pending == before else 0
        if quiet_rounds >= FLUSH_QUIET_ROUNDS:  # flushed, yet no answer comes: give up on those
            break
        before = pending
        time.sleep(0.02)
    with lock:
        pending = stats.pending
        if pending > 0:
            stats.failed += pending
            stats.errors[UNDELIVERED] += pending
            stats.examples.setdefault(UNDELIVERED, _describe(last_error) if last_error is not None else UNDELIVERED)


def _count_failure(stats: ProduceStats, error: BaseException, reason: str | None = None, count: int = 1) -> None:
    reason = reason or type(error).__name__
    stats.failed += count
    if count:
        stats.errors[reason] += count
    if reason not in stats.examples:
        stats.examples[reason] = _describe(error)


def _describe(error: BaseException) -> str:
    """One line about ``error``; a broker error without a message gets its documented description."""
    description = getattr(error, "description", None)
    if description and all(arg in (None, "") for arg in error.args):
        return f"{type(error).__name__}: {description}"[:300]
    return f"{type(error).__name__}: {error}"[:300]


# --------------------------------------------------------------------------- in-memory fake


class _Future:
    """Enough of kafka-python's future for the producer: callbacks run when it resolves."""

    __slots__ = ("_callbacks", "_errbacks", "error", "is_done", "value")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], None]] = []
        self._errbacks: list[Callable[[BaseException], None]] = []
        self.is_done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def add_callback(self, fn: Callable[[Any], None]) -> _Future:
        if not self.is_done:
            self._callbacks.append(fn)
        elif self.error is None:
            fn(self.value)
        return self

    def add_errback(self, fn: Callable[[BaseException], None]) -> _Future:
        if not self.is_done:
            self._errbacks.append(fn)
        elif self.error is not None:
            fn(self.error)
        return self

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        self.is_done, self.value, self.error = True, value, error
        for fn in self._errbacks if error is not None else self._callbacks:
            fn(error if error is not None else value)
        self._callbacks, self._errbacks = [], []


class MemoryProducer:
    """A stand-in for ``KafkaProducer`` that keeps ``(topic, key, value)`` in :attr:`messages`.

    Deliveries are answered at :meth:`flush` (or at once with ``immediate=True``); ``fail(topic,
    key, value)`` returning an exception fails that message with it, as a broker would.
    """

    def __init__(
        self,
        fail: Callable[[str, bytes | None, bytes], BaseException | None] | None = None,
        immediate: bool = False,
        partitions: int = 4,
    ) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []
        self.fail, self.immediate, self.partitions = fail, immediate, partitions
        self.flushes = 0
        self.closed = False
        self.metadata_requests: list[str] = []
        self._pending: list[tuple[_Future, BaseException | None, int]] = []

    def partitions_for(self, topic: str) -> set[int]:
        self.metadata_requests.append(topic)
        return set(range(self.partitions))

    def partition_of(self, key: bytes | None) -> int:
        """A stable partition per key, as Kafka's partitioner gives (not the same numbers)."""
        return 0 if key is None else int.from_bytes(key[-4:].rjust(4, b"\0"), "big") % self.partitions

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: Any) -> _Future:
        if self.closed:
            raise RuntimeError("MemoryProducer already closed")
        if (key is not None and not isinstance(key, bytes)) or not isinstance(value, bytes):
            raise TypeError("key and value must be bytes")
        future = _Future()
        error = self.fail(topic, key, value) if self.fail is not None else None
        self.messages.append((topic, key, value))
        entry = (future, error, len(self.messages) - 1)
        if self.immediate:
            self._answer(*entry)
        else:
            self._pending.append(entry)
        return future

    def _answer(self, future: _Future, error: BaseException | None, offset: int) -> None:
        future.resolve(None if error is not None else offset, error)

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1
        pending, self._pending = self._pending, []
        for entry in pending:
            self._answer(*entry)

    def close(self, timeout: float | None = None) -> None:
        self.flush()
        self.closed = True
