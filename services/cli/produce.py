"""``fraudstream produce``: send a file or the generator to a Kafka topic at a controlled rate."""

from __future__ import annotations

import itertools
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from fraudstream.model.errors import require
from fraudstream.services.cli.common import FORMAT_HELP, console, fail, from_settings, progress, settings

START_BROKER = "start one with scripts/services/kafka start"


INPUT, GENERATOR, PACE, KAFKA = "Input (--data)", "Generator (--generate)", "Pace", "Kafka"


class Compression(str, Enum):
    none = "none"
    gzip = "gzip"
    snappy = "snappy"
    lz4 = "lz4"
    zstd = "zstd"


def produce(
    data: Path | None = typer.Option(None, "--data", help="Transactions to send (CSV or JSON Lines, plain or .gz).", rich_help_panel=INPUT),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP, rich_help_panel=INPUT),
    dead_letters: Path | None = typer.Option(
        None, help="Where unreadable rows go.", show_default="DATA.produce.dead_letters.jsonl", rich_help_panel=INPUT,
    ),
    generate: bool = typer.Option(False, "--generate", help="Send synthetic transactions instead of a file.", rich_help_panel=GENERATOR),
    cards: int = typer.Option(2_000, min=1, metavar="N", help="Number of cards.", rich_help_panel=GENERATOR),
    days: int = typer.Option(30, min=1, metavar="N", help="Days of transactions.", rich_help_panel=GENERATOR),
    seed: int = typer.Option(7, help="Random seed.", rich_help_panel=GENERATOR),
    rate: float = typer.Option(0.0, min=0.0, metavar="RATE", help="Messages per second; 0 = as fast as possible.", rich_help_panel=PACE),
    limit: int | None = typer.Option(None, min=1, metavar="N", help="Send at most N rows.", rich_help_panel=PACE),
    bootstrap: str | None = typer.Option(
        None, help="Bootstrap servers HOST:PORT[,...].", show_default=from_settings("kafka.bootstrap"),
        rich_help_panel=KAFKA,
    ),
    topic: str | None = typer.Option(None, help="Topic to send to (created if missing).", show_default=from_settings("kafka.topic"), rich_help_panel=KAFKA),
    partitions: int = typer.Option(4, min=1, metavar="N", help="Partitions of the topic if it has to be created.", rich_help_panel=KAFKA),
    replication: int = typer.Option(1, min=1, metavar="N", help="Replication factor of the topic if it has to be created.", rich_help_panel=KAFKA),
    acks: str = typer.Option("all", help="Acknowledgements: all (idempotent), 1 or 0.", rich_help_panel=KAFKA),
    compression: Compression = typer.Option(
        Compression.none, metavar="CODEC",
        help="Batch compression: none, gzip, snappy, lz4 or zstd (the last three need their Python libraries).",
        rich_help_panel=KAFKA,
    ),
) -> None:
    """Send transactions to Kafka, keyed by card_id, as JSON; rows are validated by the consumer, not here.

    A card number used as card_id is sent as its keyed id (with card_display), never in clear.

    Connection security (TLS, SASL) comes from FRAUDSTREAM_KAFKA_* variables or --config (passwords: variables only), as for run.
    """
    from fraudstream.services.kafka.producer import parse_acks
    if (data is None) == (not generate):
        raise fail("give exactly one of --data FILE or --generate")
    if not math.isfinite(rate):
        raise fail(f"--rate must be a number of messages per second (0 = as fast as possible), got {rate}")
    try:
        acks_value = parse_acks(acks)
    except ValueError as error:
        raise fail(str(error)) from None
    try:
        kafka = settings(kafka__bootstrap=bootstrap, kafka__topic=topic).kafka
        connection = kafka.connection()  # security: from the environment or the settings file, never flags
    except ValueError as error:
        raise fail(f"Kafka settings: {error}") from None
    topic = kafka.topic

    total: int | None = None
    letters: Path | None = None
    if data is not None:
        letters = dead_letters or data.with_name(data.name + ".produce.dead_letters.jsonl")
        rows, source = _file_rows(data, fmt), str(data)
    else:
        rows, source = _generated_rows(cards, days, seed), "the generator"
        total = _estimate(cards, days, seed)
    rows = _first_row_checked(rows, source)  # a file that cannot be read at all fails before Kafka is touched
    if limit is not None:
        total = min(total, limit) if total is not None else limit
    _ensure_topic(connection, topic, partitions, replication)
    codec = None if compression is Compression.none else compression.value
    _send(rows, connection, topic, rate, acks_value, codec, total, source, letters, limit)


def _file_rows(data: Path, fmt: str) -> Iterator[Any]:
    """Raw rows of the file (``RawRow``), with the column mapping applied; fails cleanly on setup errors."""
    from fraudstream.services.sources.file_source import FileSource

    try:
        source = FileSource(data, fmt)
    except (OSError, ValueError) as error:  # missing file, unknown type, bad mapping
        raise fail(str(error)) from None
    return iter(source.rows())


def _generated_rows(cards: int, days: int, seed: int) -> Iterator[Any]:
    from fraudstream.services.sources.files import RawRow
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    config = GeneratorConfig(cards=cards, days=days, seed=seed)
    return (RawRow(position, row, "") for position, row in enumerate(generate(config), start=1))


def _estimate(cards: int, days: int, seed: int) -> int:
    from fraudstream.services.sources.generator import GeneratorConfig, estimate_rows

    return estimate_rows(GeneratorConfig(cards=cards, days=days, seed=seed))


def _first_row_checked(rows: Iterator[Any], source: str) -> Iterator[Any]:
    try:
        first = next(rows, None)
    except (ValueError, OSError) as error:  # not gzip after all, a broken CSV header...
        raise fail(f"cannot read {source}: {error}") from None
    return rows if first is None else itertools.chain([first], rows)


def _ensure_topic(settings: Any, topic: str, partitions: int, replication: int) -> None:
    KafkaError = require("kafka.errors", "fraudstream produce").KafkaError

    from fraudstream.services.kafka.topics import KafkaUnavailable, TopicError, ensure_topic

    try:
        created = ensure_topic(settings, topic, partitions, replication)
    except KafkaUnavailable as error:
        raise fail(f"{error}; {START_BROKER}", error.exit_code) from None
    except TopicError as error:
        raise fail(str(error), error.exit_code) from None
    except KafkaError as error:
        raise fail(f"cannot create topic {topic}: {type(error).__name__}: {error}") from None
    if created:
        console.print(f"created topic {escape(topic)} ({partitions} partitions, replication {replication})")


def _send(
    rows: Iterator[Any], settings: Any, topic: str, rate: float, acks: Any, compression: str | None,
    total: int | None, source: str, letters: Path | None, limit: int | None,
) -> None:
    from fraudstream.services.kafka.producer import CLOSE_TIMEOUT_S, ProduceStats, make_producer, produce_rows
    from fraudstream.services.cli.common import card_ids
    from fraudstream.services.pipeline.core import unreadable
    from fraudstream.services.stores.dead_letters import JsonlDeadLetterSink

    with _kafka_errors():
        producer = make_producer(settings, acks, compression)
    if letters is not None:
        letters.unlink(missing_ok=True)  # this run's unreadable rows only
    sink = JsonlDeadLetterSink(letters) if letters is not None else None

    pseudonymise = card_ids().apply_row  # same key as the runners: same ids, same partitions

    def readable() -> Iterator[dict[str, Any]]:
        for row in rows:
            if getattr(row, "data", None) is not None:
                yield pseudonymise(row.data)
            elif sink is not None and hasattr(row, "position"):  # IDLE markers have no position
                sink.write(unreadable(source, row.position, row.raw, row.error))

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():  # asked twice: stop waiting for the flush too
            raise KeyboardInterrupt
        stop.set()  # first: stop sending, flush what was sent, print the summary

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    pace = f"{rate:,.0f}/s" if rate else "as fast as possible"
    try:
        with _kafka_errors(setup=False), progress() as bar:
            task = bar.add_task(f"→ {topic} ({pace})", total=total, rate="")

            def show(stats: ProduceStats) -> None:
                failed = f", [red]{stats.failed:,} failed[/]" if stats.failed else ""
                bar.update(task, completed=stats.sent, rate=f"{stats.rate():,.0f} msgs/s{failed}")

            try:
                stats = produce_rows(
                    itertools.islice(readable(), limit), settings, topic, rate=rate or None, acks=acks,
                    on_progress=show, stop=stop, producer=producer,
                )
            except (ValueError, OSError) as error:  # the file broke off mid-way
                raise fail(f"cannot read {source}: {error}") from None
            bar.update(task, total=stats.queued)  # the real count, not the estimate: the bar ends full
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if sink is not None:
            sink.close()
        producer.close(timeout=CLOSE_TIMEOUT_S)
    unreadable = sink.count if sink is not None else 0
    state = "stopped" if stats.stopped else "done"
    console.print(
        f"{state}: {stats.sent:,} sent, {stats.failed:,} failed, {unreadable:,} unreadable, "
        f"{stats.elapsed_s:,.1f} s, {stats.rate():,.0f} msgs/s → {topic} at {settings.bootstrap}",
        soft_wrap=True,
    )
    if unreadable:
        console.print(
            f"[yellow]{unreadable:,} unreadable rows[/] went to {escape(str(letters))} "
            "(each with its row number and reason)",
            soft_wrap=True,
        )
    if stats.failed:
        console.print(
            f"[bold red]{stats.failed:,} messages failed:[/] {escape(stats.describe_errors())}", soft_wrap=True
        )
        raise typer.Exit(1)


@contextmanager
def _kafka_errors(setup: bool = True) -> Iterator[None]:
    """Kafka's exceptions as one-line errors (exit 2); with ``setup``, also the producer's configuration errors."""
    KafkaError = require("kafka.errors", "fraudstream produce").KafkaError

    from fraudstream.services.kafka.topics import KafkaUnavailable

    try:
        yield
    except typer.Exit:
        raise
    except KafkaUnavailable as error:
        raise fail(f"{error}; {START_BROKER}", error.exit_code) from None
    except KafkaError as error:
        raise fail(f"Kafka: {type(error).__name__}: {error}") from None
    except (RuntimeError, ValueError) as error:  # "Libraries for lz4 compression codec not found"
        if not setup:
            raise
        raise fail(f"Kafka: {error}") from None
