"""Write transaction rows to CSV or JSON Lines (optionally gzipped), atomically.

The format follows the file name: ``.csv``, ``.csv.gz``, ``.jsonl`` or ``.jsonl.gz``. The file
appears complete or not at all: rows go to a temporary file next to it, renamed at the end.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import secrets
from collections.abc import Iterable, Iterator
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import msgspec

SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz")
_BATCH = 8192


def _format(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix.split(".")[1], suffix.endswith(".gz")
    raise ValueError(f"cannot tell the format of {path}: use one of {', '.join(SUFFIXES)}")


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, _BATCH)):
        yield batch


def _write_csv(out: IO[bytes], batches: Iterator[list[dict[str, Any]]], advance: Any) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text, lineterminator="\n")  # csv writes None as an empty cell
    count = 0
    getter = None
    fields: list[str] = []
    for batch in batches:
        if getter is None:
            fields = list(batch[0])
            getter = itemgetter(*fields) if len(fields) > 1 else (lambda r, f=fields[0]: (r[f],))
            writer.writerow(fields)
        try:
            values = list(map(getter, batch))
        except KeyError:  # a row without some column: write what it has
            values = [[row.get(f) for f in fields] for row in batch]
        writer.writerows(values)
        count += len(batch)
        advance(len(batch))
    text.flush()
    text.detach()
    return count


def _write_jsonl(out: IO[bytes], batches: Iterator[list[dict[str, Any]]], advance: Any) -> int:
    encoder = msgspec.json.Encoder()
    count = 0
    for batch in batches:
        out.write(encoder.encode_lines(batch))
        count += len(batch)
        advance(len(batch))
    return count


def write_transactions(rows: Iterable[dict[str, Any]], path: str | Path, *,
                       total: int | None = None, progress: bool = False) -> int:
    """Write rows to `path` in the format its suffix names; return how many were written.

    CSV takes its columns from the first row and leaves None as an empty cell. `total` only
    sizes the progress bar shown when `progress` is true.
    """
    path = Path(path)
    kind, gz = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write = _write_csv if kind == "csv" else _write_jsonl
    try:
        with open(tmp, "xb") as raw, _progress(progress, total, path.name) as advance:
            if gz:
                # mtime=0 and no file name in the header: the same rows give the same bytes.
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                   mtime=0) as zipped:
                    count = write(zipped, _batches(rows), advance)  # type: ignore[arg-type]
            else:
                count = write(raw, _batches(rows), advance)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return count


@contextlib.contextmanager
def _progress(show: bool, total: int | None, label: str) -> Iterator[Any]:
    """A callback advancing a rich progress bar, or a no-op when not shown."""
    if not show:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"writing {label}", total=total)
        yield lambda n: bar.advance(task, n)
        if total is None or bar.tasks[0].completed != total:
            # The estimate was approximate: finish the bar at the true count.
            done = bar.tasks[0].completed
            bar.update(task, total=done, completed=done)
