"""What a runner reads from: a resumable, ordered stream of raw rows.

A source numbers its rows (``position``, 1-based) and can start again after any position, which is
what lets a runner checkpoint "everything up to N is in the stores" and resume there after a crash.
A live source yields :data:`IDLE` before it waits for the next row, so the runner can flush what it
holds instead of sitting on a half-full batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Protocol, Union

from fraudstream.services.sources.files import RawRow


class _Idle:
    __slots__ = ()

    def __repr__(self) -> str:
        return "IDLE"


IDLE: Final = _Idle()
SourceItem = Union[RawRow, _Idle]


class Source(Protocol):
    """A replayable stream of raw rows."""

    @property
    def name(self) -> str:
        """Identity of the stream, recorded in checkpoints and dead letters."""

    def rows(self, after: int = 0) -> Iterator[SourceItem]:
        """Rows with ``position > after`` in order, with :data:`IDLE` markers where a live source waits."""
