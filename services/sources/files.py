"""Read transaction files: CSV and JSON Lines (plain or gzip), in any column layout, bad rows to dead letters.

The file type comes from the suffix: ``.csv``, ``.jsonl`` / ``.ndjson``, ``.json`` (an array, or
JSON Lines), each optionally ``.gz``. Text is UTF-8; a byte-order mark is skipped and undecodable
bytes become U+FFFD rather than stopping the read.

:func:`read_rows` gives the parsed rows as they are (a runner source uses it);
:func:`read_transactions` maps them and admits them through the pipeline core (contract,
event-time window, duplicate ids), sending every bad row to a dead-letter sink with its position
and reason and carrying on. A ``.gz`` file that is not gzip, or is damaged, is a
:class:`FileFormatError` naming the file.

>>> import tempfile, pathlib
>>> from fraudstream.services.stores.dead_letters import ListDeadLetterSink
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tx.csv"
>>> _ = path.write_text("transaction_id,timestamp,card_id,merchant_id,amount\\n"
...                     "t1,2026-01-01T00:00:00Z,c1,m1,12.5\\n"
...                     "t2,2026-01-01T00:00:01Z,c1,m1,-3\\n")
>>> sink = ListDeadLetterSink()
>>> [(position, txn.transaction_id) for position, txn in read_transactions(path, dead_letters=sink)]
[(1, 't1')]
>>> sink.letters[0].position, sink.letters[0].field, sink.letters[0].reason
('2', 'amount', 'must be 0 or more, got -3.0')
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from fraudstream.model.errors import InputError
from fraudstream.model.schema import CANONICAL_FIELDS, REQUIRED_FIELDS, InvalidTransaction, Transaction
from fraudstream.services.pipeline.core import Intake
from fraudstream.services.sources.mapping import ColumnMapping, MappingError, resolve_format
from fraudstream.services.stores.dead_letters import DeadLetter, DeadLetterSink

__all__ = ["SUFFIXES", "FileFormatError", "RawRow", "check_file", "read_rows", "read_transactions"]

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")  # each may also end in .gz
_BOM = b"\xef\xbb\xbf"
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class FileFormatError(InputError, ValueError):
    """A file that cannot be read as transactions at all (unknown suffix, broken CSV header)."""


@dataclass(frozen=True)
class RawRow:
    """One row of a file, parsed but not validated."""

    position: int  # 1-based data row (CSV: header not counted; JSON Lines: line number)
    data: dict[str, Any] | None  # None when the row could not be parsed
    raw: str  # the row's text
    error: str | None = None  # why data is None


def read_rows(path: str | Path) -> Iterator[RawRow]:
    """Every row of ``path`` in file order; empty CSV cells are None, unparseable rows have ``data=None``."""
    path = Path(path)
    kind, compressed = _kind(path)
    if kind == "csv":
        with _open_text(path, compressed) as file:
            header, records = _csv_records(file, path)
            width = len(header)
            for position, cells, lines, error in records:
                if error is None and len(cells) == width:
                    yield RawRow(position, dict(zip(header, [cell or None for cell in cells])), _joined(lines))
                else:
                    yield RawRow(position, None, _joined(lines), error or _width_error(width, cells))
    else:
        for position, data, line, error in _json_records(path, compressed, kind):
            yield RawRow(position, data, _line_text(line), error)


def read_transactions(
    path: str | Path, fmt: str = "canonical", dead_letters: DeadLetterSink | None = None, intake: Intake | None = None
) -> Iterator[tuple[int, Transaction]]:
    """``(position, transaction)`` for every admitted row of ``path`` in file order, read through format ``fmt``.

    ``fmt`` is ``canonical``, a preset name or a ``.toml`` column mapping (see
    :func:`~fraudstream.services.sources.mapping.resolve_format`). Rows go through the pipeline
    core's ``intake`` (default: a fresh one for this file, with no card-id key, so a card number raises
    :class:`~fraudstream.services.pipeline.cards.CardKeyMissing`; the commands pass theirs): each bad row, impossible event time or
    reused id becomes a :class:`DeadLetter` in ``dead_letters`` (dropped if None), retries of a
    transaction are skipped (``intake`` counts them), and reading goes on.
    Raises :class:`MappingError` when a CSV header lacks a column for a required field.
    """
    path = Path(path)
    mapping = resolve_format(fmt)
    kind, compressed = _kind(path)
    admit = (intake if intake is not None else Intake(str(path))).admit
    write = dead_letters.write if dead_letters is not None else None

    if kind == "csv":
        outcomes = _csv_outcomes(path, compressed, mapping, admit)
    else:
        outcomes = _json_outcomes(path, compressed, kind, mapping, admit)
    for position, outcome in outcomes:
        if type(outcome) is Transaction:
            yield position, outcome
        elif type(outcome) is DeadLetter and write is not None:
            write(outcome)


def _json_outcomes(
    path: Path, compressed: bool, kind: str, mapping: ColumnMapping | None, admit: Any
) -> Iterator[tuple[int, Any]]:
    apply = mapping.apply if mapping is not None else None
    for position, data, line, error in _json_records(path, compressed, kind):
        if data is not None and apply is not None:
            try:
                data = apply(data)
            except InvalidTransaction as invalid:
                yield position, DeadLetter(str(path), str(position), invalid.field, invalid.reason, _line_text(line))
                continue
        yield position, admit(position, data, lambda: _line_text(line), error)


def _csv_outcomes(
    path: Path, compressed: bool, mapping: ColumnMapping | None, admit: Any
) -> Iterator[tuple[int, Any]]:
    with _open_text(path, compressed) as file:
        header, records = _csv_records(file, path)
        _check_header(header, mapping, path)
        width = len(header)
        build = mapping.row_builder(header) if mapping is not None else None
        # Canonical rows go straight to validate(), which reads "" as missing; only extra columns
        # need "" turned into None, to match read_rows() (a mapping does that for its extras itself).
        extra_columns = [name for name in header if name not in CANONICAL_FIELDS]
        for position, cells, lines, error in records:
            text = lambda: _joined(lines)  # noqa: E731 (the row's text, built only for a dead letter)
            if error is not None or len(cells) != width:
                yield position, admit(position, None, text, error or _width_error(width, cells))
                continue
            if build is None:
                row = dict(zip(header, cells))
                for name in extra_columns:
                    if row[name] == "":
                        row[name] = None
            else:
                try:
                    row = build(cells)
                except InvalidTransaction as invalid:
                    yield position, DeadLetter(str(path), str(position), invalid.field, invalid.reason, text())
                    continue
            yield position, admit(position, row, text)


# --------------------------------------------------------------------------- CSV


def _csv_records(file: IO[str], path: Path) -> tuple[list[str], Iterator[tuple[int, list[str], list[str], str | None]]]:
    """The header and ``(position, cells, lines, error)`` per data row; blank lines are skipped, not counted.

    ``lines`` is the row's original text (more than one line if a quoted cell holds a newline),
    valid until the next row is asked for: raw text costs nothing unless someone joins it.
    """
    lines: list[str] = []

    def tapped() -> Iterator[str]:
        for line in file:  # csv.reader asks for exactly the lines of one record at a time
            lines.append(line)
            yield line

    reader = csv.reader(tapped())
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise FileFormatError(f"{path}: cannot read the CSV header: {error}") from None
    header = [name.strip() for name in header]
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise FileFormatError(f"{path}: the CSV header names column {name!r} twice")
        seen.add(name)
    lines.clear()

    def records() -> Iterator[tuple[int, list[str], list[str], str | None]]:
        position = 0
        while True:
            try:
                for cells in reader:
                    if cells:
                        position += 1
                        yield position, cells, lines, None
                    lines.clear()
                return
            except csv.Error as error:  # the reader resumes at the next line
                position += 1
                yield position, [], lines, f"unreadable CSV row: {error}"
                lines.clear()

    return header, records()


def _check_header(header: list[str], mapping: ColumnMapping | None, path: Path) -> None:
    """Fail once, up front, when no row could ever be valid, instead of dead-lettering every row."""
    if mapping is None:
        missing = [name for name in REQUIRED_FIELDS if name not in header]
        how = "use --format or a column mapping for other layouts"
    else:
        missing = mapping.missing_required(header)
        how = f"the {mapping.name!r} mapping does not fit this file"
    if missing and header:
        raise MappingError(f"{path}: no column for {', '.join(missing)} ({how})")


def _width_error(width: int, cells: list[str]) -> str:
    return f"expected {width} columns, got {len(cells)}"


def _joined(lines: list[str]) -> str:
    return "".join(lines).rstrip("\r\n")


# --------------------------------------------------------------------------- JSON


def _json_records(path: Path, compressed: bool, kind: str) -> Iterator[tuple[int, dict[str, Any] | None, Any, str | None]]:
    """``(position, object or None, raw, error)`` for JSON Lines, or a JSON array; see :func:`_line_text` for raw."""
    decode = msgspec.json.Decoder().decode
    with _open_binary(path, compressed) as file:
        if kind == "json":
            text = file.read().removeprefix(_BOM)
            if text.lstrip()[:1] == b"[":
                yield from _json_array(text, decode)
                return
            file = io.BytesIO(text)
        for position, line in enumerate(file, start=1):
            if position == 1:
                line = line.removeprefix(_BOM)
            try:
                data = decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as error:  # bad bytes in a string: the latter
                if line.strip():
                    yield position, None, line, f"not valid JSON: {error}"
                continue
            if type(data) is dict:
                yield position, data, line, None
            else:
                yield position, None, line, f"expected a JSON object, got {_JSON_TYPE_NAMES.get(type(data), 'null')}"


def _json_array(text: bytes, decode: Any) -> Iterator[tuple[int, dict[str, Any] | None, Any, str | None]]:
    try:
        items = decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        # Nothing in a broken array can be trusted: one letter for the file, at position 0.
        yield 0, None, text, f"not valid JSON: {error}"
        return
    if type(items) is not list:
        yield 0, None, text, "expected a JSON array of objects"
        return
    for position, item in enumerate(items, start=1):
        if type(item) is dict:
            yield position, item, item, None
        else:
            yield position, None, item, f"expected a JSON object, got {_JSON_TYPE_NAMES.get(type(item), 'null')}"


def _line_text(raw: Any) -> str:
    """Text for a raw row: a JSON line (bytes) decoded, or an array item encoded back to JSON."""
    if type(raw) is not bytes:
        raw = msgspec.json.encode(raw)
    return raw.decode("utf-8", "replace").rstrip("\r\n")


# --------------------------------------------------------------------------- files


def check_file(path: str | Path) -> None:
    """Fail early, before any progress bar or store opens: the file must exist, have a known type and, if
    named ``.gz``, be gzip-compressed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if _kind(path)[1]:
        _check_gzip(path)


def _kind(path: Path) -> tuple[str, bool]:
    """``("csv" | "jsonl" | "json", compressed)`` from the file name."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    for suffix, kind in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json")):
        if name.endswith(suffix):
            return kind, compressed
    raise FileFormatError(f"unknown file type of {path}; use one of {', '.join(SUFFIXES)} (optionally .gz)")


def _open_text(path: Path, compressed: bool) -> IO[str]:
    if compressed:
        return io.TextIOWrapper(_open_gzip(path), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def _open_binary(path: Path, compressed: bool) -> IO[bytes]:
    return _open_gzip(path) if compressed else open(path, "rb")


_GZIP_MAGIC = b"\x1f\x8b"


def _check_gzip(path: Path) -> None:
    with open(path, "rb") as file:
        head = file.read(2)
    if head and head != _GZIP_MAGIC:  # an empty file is an empty gzip stream, as gzip itself reads it
        raise FileFormatError(
            f"{path} is named .gz but is not gzip-compressed (it starts with {head!r}); "
            "compress it with gzip or drop the .gz from its name"
        )


def _open_gzip(path: Path) -> IO[bytes]:
    _check_gzip(path)
    return _GzipFile(path)  # type: ignore[return-value]


class _GzipFile(gzip.GzipFile):
    """A gzip file whose damage (truncated, corrupt) is a :class:`FileFormatError` naming the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self._path = path

    def _damaged(self, error: Exception) -> FileFormatError:
        return FileFormatError(f"{self._path}: the gzip data is damaged ({error})")

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except (OSError, EOFError, zlib.error) as error:
            raise self._damaged(error) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except (OSError, EOFError, zlib.error) as error:
            raise self._damaged(error) from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except (OSError, EOFError, zlib.error) as error:
            raise self._damaged(error) from None
