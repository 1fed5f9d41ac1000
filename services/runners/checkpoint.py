"""Checkpoints: the source position and the feature state that go with it, written atomically.

A checkpoint is written only after the stores hold every result up to its position, so resuming
from it can redo work (idempotent writes absorb that) but never skip any. The feature state is
keyed on the feature definition's version (``FEATURES_VERSION``), not on the model: a retrained
model resumes the same state, while a change to the features needs a fresh start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from fraudstream.model.errors import DataIntegrityError

CHECKPOINT_FORMAT = 2  # 2: state keyed on features_version (1 was keyed on the model version)


class Checkpoint(msgspec.Struct):
    """Everything a runner needs to carry on where it stopped."""

    source: str
    features_version: str  # FEATURES_VERSION of the step that built ``state``
    model_version: str  # the model that scored up to ``position`` (for the record; a retrain may resume)
    position: int  # every row up to and including this one is in the stores
    counters: dict[str, int]
    state: dict[str, Any]  # StateStore.snapshot()
    format: int = CHECKPOINT_FORMAT


class CheckpointMismatch(DataIntegrityError, RuntimeError):
    """The checkpoint on disk belongs to another source or feature definition."""


class CheckpointFile:
    """One msgpack file, replaced atomically (write a temp file, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Checkpoint | None:
        if not self.path.exists():
            return None
        try:
            raw = msgspec.msgpack.decode(self.path.read_bytes())
            found = raw.get("format") if isinstance(raw, dict) else None
            if found != CHECKPOINT_FORMAT:
                raise CheckpointMismatch(
                    f"{self.path} is not a fraudstream checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); "
                    "start fresh (--fresh) or point --checkpoint elsewhere"
                )
            return msgspec.convert(raw, Checkpoint)
        except msgspec.MsgspecError as error:
            raise CheckpointMismatch(f"{self.path} is not a readable checkpoint ({error}); start fresh (--fresh)") from None

    def save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = msgspec.msgpack.encode(checkpoint)  # before opening: a failure leaves no temp file
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
