"""Checkpoints: the source position and the feature state that go with it, written atomically.

A checkpoint is written only after the stores hold every result up to its position, so resuming
from it can redo work (idempotent writes absorb that) but never skip any.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

CHECKPOINT_FORMAT = 1


class Checkpoint(msgspec.Struct):
    """Everything a runner needs to carry on where it stopped."""

    source: str
    model_version: str
    position: int  # every row up to and including this one is in the stores
    counters: dict[str, int]
    state: dict[str, Any]  # FeatureState.snapshot()
    format: int = CHECKPOINT_FORMAT


class CheckpointMismatch(RuntimeError):
    """The checkpoint on disk belongs to another source or model."""


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
