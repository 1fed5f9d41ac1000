"""Per-partition feature-state snapshots for the Kafka runner, one file per topic partition.

A snapshot holds the state after every message *before* ``offset`` and is written only once those
messages' results are in the sinks, so any snapshot is a safe place to resume from: messages
between it and the committed offset are replayed to rebuild state, without writing again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import msgspec

from fraudstream.model.features.step import FEATURES_VERSION

SNAPSHOT_FORMAT = 3  # 3: a stage's state (card or merchant stage); 2: keyed on features_version


class Snapshottable(Protocol):
    """What a snapshot holds: a partition's stage, which gives and takes its state as plain lists and dicts."""

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, snapshot: dict[str, Any]) -> None: ...


class PartitionSnapshot(msgspec.Struct):
    topic: str
    partition: int
    offset: int  # the next message to process
    features_version: str
    state: dict[str, Any]
    format: int = SNAPSHOT_FORMAT


class SnapshotDir:
    """Snapshots in a directory shared by every runner of a group (atomic replace, last writer wins)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{topic}-{partition}.snapshot"

    def load(self, topic: str, partition: int, into: Snapshottable) -> int | None:
        """Restore the snapshot into ``into`` and return its offset, or None when there is no usable snapshot
        (missing, unreadable, other features or format): ``into`` is then left as it was."""
        path = self.path(topic, partition)
        try:
            snap = msgspec.msgpack.decode(path.read_bytes(), type=PartitionSnapshot)
        except (OSError, msgspec.MsgspecError):
            return None
        if snap.format != SNAPSHOT_FORMAT or snap.features_version != FEATURES_VERSION:
            return None
        into.restore(snap.state)
        return snap.offset

    def save(self, topic: str, partition: int, offset: int, state: Snapshottable) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = msgspec.msgpack.encode(
            PartitionSnapshot(topic, partition, offset, FEATURES_VERSION, state.snapshot())
        )
        path = self.path(topic, partition)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
