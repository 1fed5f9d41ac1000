"""Dead letters: input that failed to parse or validate, kept with where it came from and why.

Bad input never stops the stream; it becomes a :class:`DeadLetter` written to a
:class:`DeadLetterSink`. A letter's :meth:`~DeadLetter.key` (source and position) makes writing it
twice harmless, so a replay after a crash does not double-count. Card numbers in a letter's raw text
or reason are masked when the letter is made (only rejected input pays for the scan), so no sink
ever receives one in clear.

>>> sink = ListDeadLetterSink()
>>> sink.write(DeadLetter("data.csv", "12", "amount", "must be greater than 0, got -5.0", "t12,...,-5"))
>>> sink.letters[0].key(), sink.counts_by_field()
('data.csv#12', Counter({'amount': 1}))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

import msgspec

from fraudstream.services.pipeline.cards import mask_card_numbers

__all__ = ["DeadLetter", "DeadLetterSink", "JsonlDeadLetterSink", "ListDeadLetterSink", "read_dead_letters"]

MAX_RAW_BYTES = 64 * 1024
RECORD_LEVEL = "<record>"  # counts_by_field() key for letters that name no field (unparseable rows)


@dataclass(frozen=True)
class DeadLetter:
    """One rejected input: its source, its position there, the offending field, the reason and the raw text."""

    source: str  # e.g. the file path, or "kafka:transactions:0"
    position: str  # 1-based data row "12", or "partition:offset"
    field: str | None  # None when the record as a whole is unreadable
    reason: str
    raw: str  # the input as received (card numbers masked), cut to 64 KiB of UTF-8

    def __post_init__(self) -> None:
        if isinstance(self.raw, str):
            object.__setattr__(self, "raw", mask_card_numbers(self.raw))
        if isinstance(self.reason, str):
            object.__setattr__(self, "reason", mask_card_numbers(self.reason))
        # Four bytes per character at most, so shorter text cannot exceed the limit: skip the encode.
        if len(self.raw) > MAX_RAW_BYTES // 4:
            encoded = self.raw.encode("utf-8", "surrogatepass")
            if len(encoded) > MAX_RAW_BYTES:
                object.__setattr__(self, "raw", encoded[:MAX_RAW_BYTES].decode("utf-8", "ignore"))

    def key(self) -> str:
        """The idempotency key: the same input position always gives the same key."""
        return f"{self.source}#{self.position}"


class DeadLetterSink(Protocol):
    """Where dead letters go."""

    def write(self, letter: DeadLetter) -> None: ...


class ListDeadLetterSink:
    """Keeps dead letters in memory: for tests, docs and small runs."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def write(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    @property
    def count(self) -> int:
        return len(self.letters)

    def counts_by_field(self) -> Counter[str]:
        """How many letters blame each field (``"<record>"`` for unreadable rows)."""
        return Counter(letter.field or RECORD_LEVEL for letter in self.letters)


class JsonlDeadLetterSink:
    """Appends one JSON object per dead letter to a file, opened on the first write.

    Use it as a context manager (or call :meth:`close`) so the last lines reach the disk.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0  # letters written by this sink
        self._file: IO[bytes] | None = None
        self._encoder = msgspec.json.Encoder()

    def write(self, letter: DeadLetter) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        record = {
            "key": letter.key(),
            "source": letter.source,
            "position": letter.position,
            "field": letter.field,
            "reason": letter.reason,
            "raw": letter.raw,
        }
        try:
            line = self._encoder.encode(record)
        except UnicodeEncodeError:  # lone surrogates from a lenient decoder: keep the rest readable
            record["raw"] = letter.raw.encode("utf-8", "replace").decode("utf-8")
            line = self._encoder.encode(record)
        self._file.write(line + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlDeadLetterSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_dead_letters(path: str | Path) -> Iterator[DeadLetter]:
    """Read back the letters a :class:`JsonlDeadLetterSink` wrote (for replays, reports and tests)."""
    with open(path, "rb") as file:
        for line in file:
            if line.strip():
                record = msgspec.json.decode(line)
                yield DeadLetter(
                    record["source"], record["position"], record["field"], record["reason"], record["raw"]
                )
