"""``fraudstream run``: the embedded real-time pipeline over a file or the generator, with a live view."""

from __future__ import annotations

import signal
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live

from fraudstream.services.cli.common import FORMAT_HELP, console, fail, load_model

if TYPE_CHECKING:
    from fraudstream.services.runners.embedded import RunStats


class SourceKind(str, Enum):
    generator = "generator"
    file = "file"
    kafka = "kafka"


def run(
    source: SourceKind = typer.Option(SourceKind.generator, help="Where transactions come from."),
    data: Path | None = typer.Option(None, "--data", help="With --source file: the transactions file."),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    model: Path = typer.Option(Path("var/model"), "--model", help="Model bundle directory."),
    store: str = typer.Option("var/alerts.db", help="Alert store: a SQLite path, sqlite://PATH or memory://."),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint file [default: next to the SQLite store, *.checkpoint]."),
    fresh: bool = typer.Option(False, help="Ignore (delete) an existing checkpoint and start from the beginning."),
    rate: float | None = typer.Option(None, min=0.001, help="With the generator: transactions per second (default: as fast as possible)."),
    cards: int = typer.Option(2_000, min=1, help="Generator: cards."),
    days: int = typer.Option(30, min=1, help="Generator: days of transactions."),
    seed: int = typer.Option(11, help="Generator: seed."),
    start: str = typer.Option("2026-02-01T00:00:00+00:00", help="Generator: event time of the first day."),
    batch_size: int = typer.Option(2_000, min=1, help="Rows per store write (lower = lower latency)."),
    checkpoint_rows: int = typer.Option(500_000, min=1, help="Checkpoint at least every N rows."),
    checkpoint_seconds: float = typer.Option(30.0, min=0.0, help="...and at least every N seconds."),
    live_view: bool = typer.Option(True, "--live-view/--no-live-view", help="Show the live terminal view."),
    bootstrap: str | None = typer.Option(None, help="Kafka: bootstrap servers [env FRAUDSTREAM_KAFKA_BOOTSTRAP, default 127.0.0.1:9092]."),
    topic: str = typer.Option("transactions", help="Kafka: topic to consume."),
    group: str = typer.Option("fraudstream", help="Kafka: consumer group (run several processes with one group to share partitions)."),
    scored_topic: str = typer.Option("transactions.scored", help="Kafka: where every verdict goes."),
    dlq_topic: str = typer.Option("transactions.dlq", help="Kafka: where bad messages go, with error headers."),
    replication: int = typer.Option(1, min=1, help="Kafka: replication factor of the output topics it creates."),
    state_dir: Path = typer.Option(Path("var/kafka-state"), help="Kafka: per-partition state snapshots (shared by the group's runners)."),
    metrics_port: int = typer.Option(0, min=0, max=65535, help="Serve Prometheus metrics on 127.0.0.1:PORT (0 = off)."),
    stop_when_idle: float | None = typer.Option(None, min=0.1, help="Kafka: exit after this many seconds with no new messages and no lag."),
    session_timeout: float = typer.Option(10.0, min=6.0, help="Kafka: seconds before a silent runner's partitions move to the rest of the group."),
    store_first_contact: float = typer.Option(
        60.0, min=0.1, help="Seconds to wait for an alert store that has not answered once since the start (a wrong "
        "--store?) before failing; a store that answered once is waited for through any outage."),
) -> None:
    """Score a stream in real time into the alert store; safe to kill and restart (it resumes).

    Kafka connection security (TLS, SASL) comes from FRAUDSTREAM_KAFKA_* environment variables;
    see the README.
    """
    from fraudstream.services.runners.checkpoint import CheckpointFile, CheckpointMismatch
    from fraudstream.services.stores.alerts import open_store

    bundle = load_model(model)
    if source is SourceKind.kafka:
        run_kafka(bundle, store, bootstrap=bootstrap, topic=topic, group=group, scored_topic=scored_topic,
                  dlq_topic=dlq_topic, replication=replication, state_dir=state_dir, metrics_port=metrics_port,
                  stop_when_idle=stop_when_idle, batch_size=batch_size, live_view=live_view,
                  session_timeout=session_timeout, first_contact_s=store_first_contact)
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
        alert_store = open_store(store)
    except ValueError as error:
        raise fail(str(error)) from None
    store_path = getattr(alert_store, "path", None)
    if checkpoint is None and store_path is not None:
        checkpoint = Path(store_path).with_suffix(".checkpoint")
    ckpt = CheckpointFile(checkpoint) if checkpoint is not None else None
    if fresh and ckpt is not None:
        ckpt.clear()
    run_pipeline(src, bundle, alert_store, ckpt, live_view=live_view, batch_size=batch_size,
                 checkpoint_rows=checkpoint_rows, checkpoint_seconds=checkpoint_seconds,
                 mismatch=CheckpointMismatch, first_contact_s=store_first_contact)


def run_pipeline(src, bundle, alert_store, ckpt, *, live_view: bool, mismatch: type[Exception], **options) -> RunStats:
    """The embedded runner over ``src``, with the live view, signals and summary of :func:`_drive`."""
    from fraudstream.services.runners.embedded import EmbeddedRunner

    runner = EmbeddedRunner(src, bundle, alert_store, ckpt, **options)
    try:
        return _drive(runner, f"fraudstream · {src.name} · model {bundle.version}", alert_store, live_view, src.name)
    except mismatch as error:
        raise fail(str(error)) from None


def _drive(runner, title: str, alert_store, live_view: bool, source: str) -> RunStats:
    """Run with a live view, heartbeats in the store for the dashboard, and graceful SIGINT/SIGTERM (finish the
    batch, checkpoint, exit; at once while the store is down, with nothing committed); print the summary.
    A second signal ends the run where it is, like a crash (which the runners survive)."""
    from fraudstream.services.cli.live_view import render
    from fraudstream.services.runners.status import StatusReporter, runner_name
    from fraudstream.services.runners.store_writes import StoreNeverAnswered

    heartbeat = StatusReporter(alert_store, runner_name(source))
    live = Live(console=console, refresh_per_second=4, transient=False) if live_view else nullcontext()
    with live as view:

        def progress(stats: RunStats) -> None:
            if view is not None:
                view.update(render(stats, title))
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
            raise fail(str(error)) from None
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
        f"{c['dead_letters']:,} dead letters; {stats.rate():,.0f} rows/s"
        + (f", p99 latency {p99:.1f} ms" if p99 is not None else ""),
        soft_wrap=True,
    )
    return stats


def run_kafka(bundle, store: str, *, bootstrap: str | None, topic: str, group: str, scored_topic: str,
              dlq_topic: str, replication: int, state_dir: Path, metrics_port: int,
              stop_when_idle: float | None, batch_size: int, live_view: bool, session_timeout: float,
              first_contact_s: float) -> None:
    """The consumer-group runner, with the same live view, signals and summary as the embedded one."""
    from fraudstream.services.kafka.settings import KafkaSettings
    from fraudstream.services.kafka.topics import KafkaUnavailable
    from fraudstream.services.runners.kafka import KafkaRunner, KafkaTopics
    from fraudstream.services.runners.metrics import PipelineMetrics
    from fraudstream.services.runners.snapshots import SnapshotDir
    from fraudstream.services.stores.alerts import open_store

    try:
        settings = KafkaSettings.from_env(bootstrap=bootstrap)
        alert_store = open_store(store)
    except ValueError as error:
        raise fail(str(error)) from None
    metrics = PipelineMetrics()
    if metrics_port:
        metrics.serve(metrics_port)
    runner = KafkaRunner(
        settings, bundle, alert_store, SnapshotDir(state_dir), group=group,
        topics=KafkaTopics(topic, scored_topic, dlq_topic), batch_size=batch_size,
        stop_when_idle=stop_when_idle, replication=replication, metrics=metrics,
        session_timeout_s=session_timeout, first_contact_s=first_contact_s,
    )
    try:
        _drive(runner, f"fraudstream · kafka {settings.bootstrap} {topic} (group {group}) · model {bundle.version}",
               alert_store, live_view, f"kafka:{topic}/{group}")
    except KafkaUnavailable as error:
        raise fail(f"{error}; start one with scripts/services/kafka start") from None
