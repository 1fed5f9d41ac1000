"""Per-partition feature-state snapshots for the Kafka runner, one file per topic partition.

A snapshot holds the state after every message *before* ``offset`` and is written only once those
messages' results are in the sinks, so any snapshot is a safe place to resume from: messages
between it and the committed offset are replayed to rebuild state, without writing again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.step import FEATURES_VERSION

if TYPE_CHECKING:
    from fraudstream.model.features.store import StateStore

SNAPSHOT_FORMAT = 2  # 2: keyed on features_version (1: on the feature names only)


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

    def load(self, topic: str, partition: int, into: StateStore | None = None) -> tuple[int, StateStore] | None:
        """``(offset, state)`` with the snapshot restored into ``into`` (a new in-memory store if not given), or
        None when there is no usable snapshot (missing, unreadable, other features)."""
        path = self.path(topic, partition)
        try:
            snap = msgspec.msgpack.decode(path.read_bytes(), type=PartitionSnapshot)
        except (OSError, msgspec.MsgspecError):
            return None
        if snap.format != SNAPSHOT_FORMAT or snap.features_version != FEATURES_VERSION:
            return None
        state = into if into is not None else FeatureState()
        state.restore(snap.state)
        return snap.offset, state

    def save(self, topic: str, partition: int, offset: int, state: StateStore) -> None:
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
