"""``fraudstream run``: the embedded real-time pipeline over a file or the generator, with a live view."""

from __future__ import annotations

import signal
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, STORE_HELP, card_ids, console, event_window, fail, from_settings,
    load_model, settings,
)

from fraudstream.services.defaults import KAFKA_QUIET_S

if TYPE_CHECKING:
    from fraudstream.services.pipeline.core import EventTimeWindow
    from fraudstream.services.runners.stats import RunStats
    from fraudstream.services.settings import Settings


SOURCE, MODEL_STORE, GENERATOR, CHECKPOINTING, KAFKA, OUTPUT = (
    "Source", "Model & store", "Generator (--source generator)", "Checkpointing (generator and file)",
    "Kafka (--source kafka)", "Output",
)


class SourceKind(str, Enum):
    generator = "generator"
    file = "file"
    kafka = "kafka"


def run(
    source: SourceKind = typer.Option(SourceKind.generator, metavar="KIND", help="Where transactions come from: generator, file or kafka.", rich_help_panel=SOURCE),
    data: Path | None = typer.Option(None, "--data", help="With --source file: the transactions file.", rich_help_panel=SOURCE),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP, rich_help_panel=SOURCE),
    model: Path | None = typer.Option(None, "--model", help="Model bundle directory (make demo trains this one).", show_default=from_settings("paths.model"), rich_help_panel=MODEL_STORE),
    store: str | None = typer.Option(None, help=STORE_HELP, show_default=from_settings("store.url"), rich_help_panel=MODEL_STORE),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint file.", show_default="next to a SQLite store, STORE.checkpoint", rich_help_panel=CHECKPOINTING),
    fresh: bool = typer.Option(False, help="Start from the beginning: delete the checkpoint of an earlier run.", rich_help_panel=SOURCE),
    rate: float | None = typer.Option(None, min=0.001, metavar="RATE", help="Transactions per second.", show_default="as fast as possible", rich_help_panel=GENERATOR),
    cards: int = typer.Option(2_000, min=1, metavar="N", help="Number of cards.", rich_help_panel=GENERATOR),
    days: int = typer.Option(30, min=1, metavar="N", help="Days of transactions.", rich_help_panel=GENERATOR),
    seed: int = typer.Option(11, help="Random seed.", rich_help_panel=GENERATOR),
    start: str = typer.Option("2026-02-01T00:00:00+00:00", help="Event time of the first day.", rich_help_panel=GENERATOR),
    batch_size: int = typer.Option(2_000, min=1, metavar="N", help="Rows per store write (lower = lower latency).", rich_help_panel=OUTPUT),
    checkpoint_rows: int = typer.Option(500_000, min=1, metavar="N", help="Checkpoint at least every N rows.", rich_help_panel=CHECKPOINTING),
    checkpoint_seconds: float = typer.Option(30.0, min=0.0, metavar="SECONDS", help="...and at least every N seconds.", rich_help_panel=CHECKPOINTING),
    live_view: bool = typer.Option(True, "--live-view/--no-live-view", help="Show the live terminal view.", rich_help_panel=OUTPUT),
    bootstrap: str | None = typer.Option(None, help="Bootstrap servers HOST:PORT[,...].", show_default=from_settings("kafka.bootstrap"), rich_help_panel=KAFKA),
    topic: str | None = typer.Option(None, help="Topic to consume.", show_default=from_settings("kafka.topic"), rich_help_panel=KAFKA),
    group: str | None = typer.Option(None, help="Consumer group (run several processes with one group to share partitions).", show_default=from_settings("kafka.group"), rich_help_panel=KAFKA),
    scored_topic: str | None = typer.Option(None, help="Where every verdict goes.", show_default=from_settings("kafka.scored_topic"), rich_help_panel=KAFKA),
    dlq_topic: str | None = typer.Option(None, help="Where bad messages go, with error headers.", show_default=from_settings("kafka.dlq_topic"), rich_help_panel=KAFKA),
    replication: int = typer.Option(1, min=1, metavar="N", help="Replication factor of the output topics it creates.", rich_help_panel=KAFKA),
    state_dir: Path | None = typer.Option(None, help="Per-partition state snapshots (shared by the group's runners).", show_default=from_settings("kafka.state_dir"), rich_help_panel=KAFKA),
    metrics_port: int = typer.Option(0, min=0, max=65535, metavar="PORT", help="Serve Prometheus metrics on 127.0.0.1:PORT (0 = off).", rich_help_panel=KAFKA),
    stop_when_idle: float | None = typer.Option(None, min=0.1, metavar="SECONDS", help="Exit after this many seconds with no new messages and no lag.", rich_help_panel=KAFKA),
    session_timeout: float = typer.Option(10.0, min=6.0, metavar="SECONDS", help="Seconds before a silent runner's partitions move to the rest of the group.", rich_help_panel=KAFKA),
    quiet_after: float = typer.Option(KAFKA_QUIET_S, min=0.1, metavar="SECONDS", help="A partition with nothing new for this long stops holding back the merchant stage (lower: sooner alerts on quiet topics; higher: fewer late transactions).", rich_help_panel=KAFKA),
    warm_up: Path | None = typer.Option(None, "--warm-up", metavar="FILE", help="Before going live, replay this history file (read with --format) through the feature state only: no scores, no alerts. Skipped when resuming.", rich_help_panel=SOURCE),
    not_before: str | None = typer.Option(None, metavar="DATE", help=NOT_BEFORE_HELP, show_default=from_settings("pipeline.not_before"), rich_help_panel=SOURCE),
    max_ahead_hours: float | None = typer.Option(None, metavar="HOURS", help=MAX_AHEAD_HELP, show_default=from_settings("pipeline.max_ahead_hours"), rich_help_panel=SOURCE),
    store_first_contact: float = typer.Option(60.0, metavar="SECONDS", help="Fail if the alert store has not answered once in this long since the start (a wrong --store?); a store that answered once is waited for through any outage.", rich_help_panel=MODEL_STORE),
) -> None:
    """Score a stream in real time into the alert store; safe to kill and restart (it resumes).

    Kafka connection security (TLS, SASL) comes from FRAUDSTREAM_KAFKA_* variables or --config (passwords: variables only).
    """
    from fraudstream.services.runners.checkpoint import CheckpointFile, CheckpointMismatch
    from fraudstream.services.stores.alerts import open_store

    config = settings(paths__model=model, store__url=store, kafka__bootstrap=bootstrap, kafka__topic=topic,
                      kafka__group=group, kafka__scored_topic=scored_topic, kafka__dlq_topic=dlq_topic,
                      kafka__state_dir=state_dir, pipeline__not_before=not_before,
                      pipeline__max_ahead_hours=max_ahead_hours)
    store = config.store.url
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    if store_first_contact <= 0:
        raise fail(f"--store-first-contact must be more than 0 seconds, got {store_first_contact:g}")
    bundle = load_model(config.paths.model)
    if source is SourceKind.kafka:
        if warm_up is not None:
            raise fail("--warm-up works with --source file or generator; Kafka runners keep their state in --state-dir")
        run_kafka(bundle, config, replication=replication, metrics_port=metrics_port,
                  stop_when_idle=stop_when_idle, batch_size=batch_size, live_view=live_view,
                  session_timeout=session_timeout, window=window, first_contact_s=store_first_contact,
                  quiet_s=quiet_after)
        return
    if source is SourceKind.file:
        if data is None:
            raise fail("--source file needs --data FILE")
        from fraudstream.services.sources.file_source import FileSource
        try:
            src = FileSource(data, fmt)
        except (OSError, ValueError) as error:  # missing file, unknown type, bad mapping
            raise fail(str(error)) from None
    else:
        from fraudstream.services.sources.generator import GeneratorConfig
        from fraudstream.services.sources.generator_source import GeneratorSource

        src = GeneratorSource(GeneratorConfig(cards=cards, days=days, seed=seed, start=start), rate=rate)
    try:
        alert_store = open_store(store, config)
    except ValueError as error:
        raise fail(str(error)) from None
    store_path = getattr(alert_store, "path", None)
    if checkpoint is None and store_path is not None:
        checkpoint = Path(store_path).with_suffix(".checkpoint")
    ckpt = CheckpointFile(checkpoint) if checkpoint is not None else None
    if fresh and ckpt is not None:
        ckpt.clear()
    if warm_up is not None:
        from fraudstream.services.cli.warm_up import warm_from_file

        warm = warm_from_file(warm_up, fmt, ckpt)
        initial = {"initial_state": warm.state} if warm is not None else {}
    else:
        initial = {}
    run_pipeline(src, bundle, alert_store, ckpt, live_view=live_view, batch_size=batch_size,
                 checkpoint_rows=checkpoint_rows, checkpoint_seconds=checkpoint_seconds,
                 mismatch=CheckpointMismatch, window=window, first_contact_s=store_first_contact, **initial)


def run_pipeline(src, bundle, alert_store, ckpt, *, live_view: bool, mismatch: type[Exception], role: str = "",
                 **options) -> RunStats:
    """The embedded runner over ``src``, with the live view, signals and summary of :func:`_drive`; ``role``
    (e.g. ``demo``) goes into the runner's name on the dashboard."""
    from fraudstream.services.runners.embedded import EmbeddedRunner

    options.setdefault("card_ids", card_ids())  # the configured key, read on the first card number
    runner = EmbeddedRunner(src, bundle, alert_store, ckpt, **options)
    try:
        return _drive(runner, f"fraudstream · {src.name} · model {bundle.version}", alert_store, live_view, src.name,
                      role=role)
    except mismatch as error:
        raise fail(str(error), getattr(error, "exit_code", 2)) from None


def _drive(runner, title: str, alert_store, live_view: bool, source: str, role: str = "") -> RunStats:
    """Run with a live view, heartbeats in the store for the dashboard, and graceful SIGINT/SIGTERM (finish the
    batch, checkpoint, exit; at once while the store is down, with nothing committed); print the summary.
    A second signal ends the run where it is, like a crash (which the runners survive)."""
    from fraudstream.services.cli.live_view import StatusLines, render
    from fraudstream.services.runners.status import StatusReporter, runner_name
    from fraudstream.services.runners.store_writes import StoreNeverAnswered

    name = runner_name(source, role)
    heartbeat = StatusReporter(alert_store, name)
    lines = None if console.is_terminal else StatusLines(console, name)  # logs, nohup, containers: no live view
    live = Live(console=console, refresh_per_second=4, transient=False) if live_view and lines is None else nullcontext()
    with live as view:

        def progress(stats: RunStats) -> None:
            if view is not None:
                view.update(render(stats, title))
            if lines is not None:
                lines(stats)
            heartbeat(stats)

        runner.on_progress = progress

        def stop(signum: int, frame: object) -> None:
            runner.stop()  # only flags: safe wherever the signal lands
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C: KeyboardInterrupt
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the next SIGTERM: the process ends

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stats = runner.run()
            heartbeat(stats, force=True)
        except StoreNeverAnswered as error:
            raise fail(str(error), error.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted twice: stopped at once; the next run resumes from the last checkpoint", 130) from None
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            alert_store.close()
    c = stats.counters
    state = "finished" if stats.finished else f"stopped after {stats.position:,} (run again to resume)"
    p99 = stats.latency_ms(0.99)
    console.print(
        f"{state}: {c['read']:,} read, {c['scored']:,} scored, {c['alerts']:,} alerts, "
        f"{c['dead_letters']:,} dead letters, {c['duplicates']:,} duplicates"
        + (f", {c['late']:,} late" if "late" in c else "")  # the Kafka runner's merchant stage (README)
        + f"; {stats.rate():,.0f} rows/s"
        + (f", p99 latency {p99:.1f} ms" if p99 is not None else ""),
        soft_wrap=True,
    )
    return stats


def run_kafka(bundle, config: Settings, *, replication: int, metrics_port: int,
              stop_when_idle: float | None, batch_size: int, live_view: bool, session_timeout: float,
              first_contact_s: float, window: EventTimeWindow | None = None, quiet_s: float = KAFKA_QUIET_S) -> None:
    """The consumer-group runner (store, topics, group, snapshots and connection from ``config``), with the same
    live view, signals and summary as the embedded one."""
    from fraudstream.services.kafka.topics import KafkaUnavailable
    from fraudstream.services.runners.kafka import KafkaRunner, KafkaTopics
    from fraudstream.services.runners.metrics import PipelineMetrics
    from fraudstream.services.runners.snapshots import SnapshotDir
    from fraudstream.services.stores.alerts import open_store

    try:
        kafka = config.kafka
        connection = kafka.connection()
        alert_store = open_store(config.store.url, config)
    except ValueError as error:
        raise fail(str(error)) from None
    metrics = PipelineMetrics()
    if metrics_port:
        metrics.serve(metrics_port)
    topic, group = kafka.topic, kafka.group
    runner = KafkaRunner(
        connection, bundle, alert_store, SnapshotDir(kafka.state_dir), group=group,
        topics=KafkaTopics(topic, kafka.scored_topic, kafka.dlq_topic), batch_size=batch_size,
        stop_when_idle=stop_when_idle, replication=replication, metrics=metrics,
        session_timeout_s=session_timeout, window=window, first_contact_s=first_contact_s,
        card_ids=card_ids(), quiet_s=quiet_s,
    )
    try:
        _drive(runner, f"fraudstream · kafka {connection.bootstrap} {topic} (group {group}) · model {bundle.version}",
               alert_store, live_view, f"kafka:{topic}/{group}")
    except KafkaUnavailable as error:
        raise fail(f"{error}; start one with scripts/services/kafka start", error.exit_code) from None
