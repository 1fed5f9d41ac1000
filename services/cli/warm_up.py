"""``run --warm-up FILE`` (and the demo): the feature state warmed from a history file before going live."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fraudstream.services.cli.common import console, dead_letter_path, read_history

if TYPE_CHECKING:
    from fraudstream.services.runners.checkpoint import CheckpointFile
    from fraudstream.services.runners.warm_up import WarmState


def warm_from_file(path: Path, fmt: str, checkpoint: CheckpointFile | None) -> WarmState | None:
    """The state after every valid row of ``path`` (bad rows go to its dead-letter file, as for ``score``), or
    None when ``checkpoint`` already holds a run: its state includes the warm-up, and history must not count twice."""
    from fraudstream.services.runners.warm_up import warm_up

    if checkpoint is not None and checkpoint.load() is not None:
        console.print(f"resuming from {checkpoint.path}: its state already includes the warm-up, {path} is not read again")
        return None
    warm = warm_up(read_history(path, fmt, dead_letter_path(path, None)))
    console.print(f"warmed up the state of {len(warm.state.cards):,} cards with {warm.transactions:,} transactions "
                  f"from {path} (not scored, no alerts)")
    return warm
