"""A file of transactions (CSV or JSON Lines, plain or gzip, any column layout) as a runner source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fraudstream.services.sources.base import SourceItem
from fraudstream.services.sources.files import RawRow, check_file, read_rows
from fraudstream.services.sources.mapping import resolve_format


class FileSource:
    """Reads ``path`` row by row, mapping other layouts to the canonical one (``fmt``)."""

    def __init__(self, path: str | Path, fmt: str = "canonical") -> None:
        self.path = Path(path)
        check_file(self.path)
        self.mapping = resolve_format(fmt)

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def rows(self, after: int = 0) -> Iterator[SourceItem]:
        mapping = self.mapping
        for row in read_rows(self.path):
            if row.position <= after:
                continue
            if mapping is not None and row.data is not None:
                try:
                    row = RawRow(row.position, mapping.apply(row.data), row.raw)
                except ValueError as error:
                    row = RawRow(row.position, None, row.raw, f"column mapping {mapping.name}: {error}")
            yield row
