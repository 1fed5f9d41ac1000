"""Column mappings: read files in other layouts (public datasets, bank exports) as canonical rows.

A mapping renames source columns to canonical fields, parses the timestamp format the source
uses, fills defaults, and passes the other columns through as extra fields. It is written as a
small TOML file::

    name = "my-bank"            # optional; defaults to the file name
    keep_unmapped = true        # other source columns travel on as extra fields (the default)

    [columns]                   # canonical field = "source column", or candidates in order
    transaction_id = "txn_ref"
    card_id = ["pan_token", "account_no"]   # the first present, non-empty one wins
    merchant_id = "merchant"
    amount = "amt"
    timestamp = [                           # a timestamp candidate may carry its own format
      { column = "posted_at", format = "%d/%m/%Y %H:%M:%S" },
      { column = "epoch", format = "epoch_s" },
    ]
    device_id = { column = "terminal", format = "digits:8" }   # leading zeros the source lost

    [timestamp]
    format = "auto"             # default format for timestamp columns (see below)
    timezone = "+01:00"         # fixed offset for naive times: "+HH:MM", "-HH:MM", "UTC" (default UTC)

    [defaults]                  # values for canonical fields that are missing or empty
    currency = "EUR"
    country = "FR"

Timestamp formats:

- ``auto``: RFC 3339 with an offset is kept as is; a naive ``YYYY-MM-DD HH:MM:SS[.fff]`` is read
  in ``timezone``; an integer (or a string of digits) is epoch milliseconds.
- ``rfc3339``: RFC 3339 with an offset, required.
- ``epoch_s`` / ``epoch_ms``: seconds or milliseconds since 1970-01-01 UTC.
- a ``strptime`` pattern such as ``"%Y-%m-%d %H:%M:%S"``: naive results are read in ``timezone``;
  patterns with ``%z`` keep the offset they parse.

Id formats (``transaction_id``, ``card_id``, ``merchant_id``, ``device_id``):

- ``digits:N``: an all-digit value shorter than ``N`` digits is left-padded with zeros to ``N``;
  anything else is kept as it is. For sources that stored a fixed-width number as an integer and
  so dropped its leading zeros (Sparkov's ``cc_num``: the 12-digit ``060416207185`` is written
  ``60416207185``); restoring them gives the id, and the card number, the source meant.

Other rules: a canonical field that ``[columns]`` does not name is read from a source column of the
same name, if there is one. Columns with an empty name or named ``Unnamed: N`` (a saved pandas
index) are skipped, as are unmapped columns that carry a canonical name (they would clash).
Empty values count as missing. Unknown keys and unknown canonical fields are errors, so a typo
cannot silently drop a column.

>>> mapping = ColumnMapping("demo", {"transaction_id": "id", "amount": "amt", "timestamp": "when"},
...                         timestamp_format="%Y-%m-%d %H:%M:%S", defaults={"currency": "EUR"})
>>> row = mapping.apply({"id": "t1", "amt": "9.99", "when": "2026-01-01 00:00:00", "card_id": "c1", "note": ""})
>>> {name: row[name] for name in ("transaction_id", "timestamp", "card_id", "amount", "currency", "note")}
{'transaction_id': 't1', 'timestamp': 1767225600000, 'card_id': 'c1', 'amount': '9.99', 'currency': 'EUR', 'note': None}
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from fraudstream.model.errors import InputError
from fraudstream.model.schema import CANONICAL_FIELDS, REQUIRED_FIELDS, InvalidTransaction, format_timestamp

__all__ = ["FORMATS", "ColumnMapping", "MappingError", "load_mapping", "resolve_format"]

FORMATS: tuple[str, ...] = ("canonical", "sparkov", "handbook")
TIMESTAMP_KEYWORDS = ("auto", "rfc3339", "epoch_s", "epoch_ms")
ID_FIELDS = ("transaction_id", "card_id", "merchant_id", "device_id")  # the fields that take an id format
DIGITS_FORMAT = "digits:"
MAX_DIGITS_WIDTH = 64

_CANONICAL_SET = frozenset(CANONICAL_FIELDS)
_TOP_LEVEL_KEYS = ("name", "keep_unmapped", "columns", "timestamp", "defaults")
_TIMESTAMP_KEYS = ("format", "timezone")
_NO_DEFAULT = ("transaction_id", "timestamp")  # a default here would give every row the same value
# strptime is slow; these patterns are fixed-width ISO layouts that fromisoformat reads ~10x faster.
_ISO_PATTERNS = {"%Y-%m-%d %H:%M:%S": " ", "%Y-%m-%dT%H:%M:%S": "T"}
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_ONE_MINUTE = timedelta(minutes=1)

Converter = Callable[[Any], Any]


class MappingError(InputError, ValueError):
    """A column mapping (file or name) that cannot be used; the message names the bad key."""


@dataclass(frozen=True)
class ColumnMapping:
    """How to turn one source row into a canonical raw row for :func:`~fraudstream.model.schema.validate`."""

    name: str
    columns: dict[str, Any]  # canonical field -> source column, or candidates (first non-empty wins)
    timestamp_format: str = "auto"  # auto | rfc3339 | epoch_s | epoch_ms | a strptime pattern
    timezone_offset_min: int = 0  # offset for naive timestamps
    defaults: dict[str, Any] = field(default_factory=dict)
    keep_unmapped: bool = True  # unmapped source columns go to extras

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plan", _Plan(self))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle the settings, not the compiled plan (closures), so Spark can ship a mapping to workers.
        fields = (self.name, self.columns, self.timestamp_format, self.timezone_offset_min, self.defaults)
        return (type(self), (*fields, self.keep_unmapped))

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical raw dict for ``row``: canonical names, timestamp as epoch ms (or RFC 3339), extras."""
        return self._plan.apply(row)  # type: ignore[attr-defined, no-any-return]

    def missing_required(self, source_columns: Collection[str]) -> list[str]:
        """Required fields that none of ``source_columns`` (say, a CSV header) can fill, with what was looked for."""
        return self._plan.missing_required(source_columns)  # type: ignore[attr-defined, no-any-return]

    def row_builder(self, columns: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """A faster :meth:`apply` for rows given as value lists in the order of ``columns`` (CSV cells).

        ``mapping.row_builder(header)(cells) == mapping.apply(dict(zip(header, cells)))``.
        """
        return self._plan.for_columns(tuple(columns))  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------- compiled plan


class _Plan:
    """A mapping checked and compiled once, with a row builder per source layout (key order or CSV header)."""

    def __init__(self, mapping: ColumnMapping) -> None:
        _check_settings(mapping)
        self.candidates = {
            name: _candidates(name, mapping.columns.get(name, name), mapping) for name in CANONICAL_FIELDS
        }
        self.defaults = dict(mapping.defaults)
        self.keep_unmapped = mapping.keep_unmapped
        self.not_extra = _CANONICAL_SET | {column for c in self.candidates.values() for column, _ in c}
        self.builders: dict[tuple[Any, ...], RowBuilder] = {}

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        keys = tuple(row)
        builder = self.builders.get(keys)
        if builder is None:
            builder = self.for_columns(keys)
        return builder(tuple(row.values()))

    def for_columns(self, columns: tuple[Any, ...]) -> RowBuilder:
        # Rows of one source share their layout: a file has one, JSON a few; stay bounded anyway.
        if len(self.builders) >= 64:
            self.builders.clear()
        builder = self.builders[columns] = _row_builder(self, columns)
        return builder

    def missing_required(self, source_columns: Collection[str]) -> list[str]:
        present = set(source_columns)
        return [
            f"{name} (looked for {', '.join(repr(column) for column, _ in self.candidates[name])})"
            for name in REQUIRED_FIELDS
            if name not in self.defaults and not any(column in present for column, _ in self.candidates[name])
        ]


RowBuilder = Callable[[Sequence[Any]], dict[str, Any]]


def _row_builder(plan: _Plan, columns: tuple[Any, ...]) -> RowBuilder:
    """A function from the values of one row (in ``columns`` order) to the canonical raw dict.

    A closure rather than a class: it runs once per row, and closure variables are the cheapest to read.
    """
    where = {column: index for index, column in enumerate(columns)}  # a repeated column: the last wins
    constants: dict[str, Any] = {}  # defaults of fields this layout has no column for
    plain_names, plain_indices, converted = [], [], []
    for name, candidates in plan.candidates.items():
        present = tuple((where[column], convert) for column, convert in candidates if column in where)
        default = plan.defaults.get(name)
        if not present:
            if default is not None:
                constants[name] = default
        elif len(present) == 1 and present[0][1] is None and default is None:
            plain_names.append(name)
            plain_indices.append(present[0][0])
        else:
            converted.append((name, present, default))
    extras = [
        (column, index)
        for index, column in enumerate(columns)
        if plan.keep_unmapped and column not in plan.not_extra and not _is_index_column(column) and where[column] == index
    ]
    # Plain renames and extras are fetched together, in one C-level pass.
    names = (*plain_names, *(column for column, _ in extras))
    take = _getter([*plain_indices, *(index for _, index in extras)])
    others = tuple(converted)

    def build(values: Sequence[Any]) -> dict[str, Any]:
        taken = take(values)
        if "" in taken:  # empty means missing, as in read_rows()
            taken = [None if value == "" else value for value in taken]
        out = dict(zip(names, taken))
        if constants:
            out.update(constants)
        for name, candidates, default in others:
            value = None
            for index, convert in candidates:
                found = values[index]
                if found is not None and found != "":
                    try:
                        value = found if convert is None else convert(found)
                    except (ValueError, TypeError, OverflowError) as error:
                        raise _conversion_error(name, found, error) from None
                    break
            out[name] = default if value is None else value
        return out

    return build


def _getter(indices: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Like ``operator.itemgetter(*indices)``, but always returning a sequence."""
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    if len(indices) == 1:
        only = indices[0]
        return lambda values: (values[only],)
    return lambda values: ()


def _conversion_error(name: str, value: Any, error: Exception) -> InvalidTransaction:
    if isinstance(error, InvalidTransaction):
        return error
    return InvalidTransaction(name, f"cannot convert {str(value)[:64]!r}: {error}")  # e.g. a year past 9999


def _is_index_column(name: Any) -> bool:
    return name == "" or (isinstance(name, str) and name.startswith("Unnamed: "))


def _check_settings(mapping: ColumnMapping) -> None:
    if not isinstance(mapping.name, str) or not mapping.name:
        raise MappingError(f"'name' must be a non-empty string, got {mapping.name!r}")
    if not isinstance(mapping.columns, Mapping):
        raise MappingError(f"[columns] must be a table, got {type(mapping.columns).__name__}")
    for name in mapping.columns:
        _check_canonical(name, "[columns]")
    if not isinstance(mapping.keep_unmapped, bool):
        raise MappingError(f"'keep_unmapped' must be true or false, got {mapping.keep_unmapped!r}")
    offset = mapping.timezone_offset_min
    if type(offset) is not int or not -1439 <= offset <= 1439:
        raise MappingError(f"timezone offset must be whole minutes within ±23:59, got {offset!r}")
    _check_timestamp_format(mapping.timestamp_format, "[timestamp] format")
    if not isinstance(mapping.defaults, Mapping):
        raise MappingError(f"[defaults] must be a table, got {type(mapping.defaults).__name__}")
    for name, value in mapping.defaults.items():
        _check_canonical(name, "[defaults]")
        if name in _NO_DEFAULT:
            raise MappingError(f"[defaults] {name}: cannot have a default (every row would get the same value)")
        if not isinstance(value, (str, int, float)):
            raise MappingError(f"[defaults] {name}: must be a string or a number, got {type(value).__name__}")


def _check_canonical(name: Any, where: str) -> None:
    if name not in _CANONICAL_SET:
        close = difflib.get_close_matches(str(name), CANONICAL_FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (fields: {', '.join(CANONICAL_FIELDS)})"
        raise MappingError(f"{where}: unknown canonical field {name!r}{hint}")


def _check_timestamp_format(fmt: Any, where: str) -> None:
    if not isinstance(fmt, str) or not (fmt in TIMESTAMP_KEYWORDS or "%" in fmt):
        raise MappingError(f"{where}: must be one of {', '.join(TIMESTAMP_KEYWORDS)} or a strptime pattern, got {fmt!r}")


def _candidates(name: str, spec: Any, mapping: ColumnMapping) -> tuple[tuple[str, Converter | None], ...]:
    """Normalise one ``[columns]`` entry into ``((column, converter or None), ...)``."""
    where = f"[columns] {name}"
    entries = spec if isinstance(spec, list) else [spec]
    if not entries:
        raise MappingError(f"{where}: needs at least one column")
    result = []
    for entry in entries:
        fmt = mapping.timestamp_format
        convert: Converter | None = None
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"column", "format"}
            if unknown:
                raise MappingError(f"{where}: unknown key {sorted(unknown)[0]!r} (use column, format)")
            if "format" in entry:
                if name == "timestamp":
                    fmt = entry["format"]
                    _check_timestamp_format(fmt, f"{where} format")
                elif name in ID_FIELDS:
                    convert = functools.partial(_zero_padded, width=_digits_width(entry["format"], f"{where} format"))
                else:
                    raise MappingError(f"{where}: only timestamp and id columns ({', '.join(ID_FIELDS)}) take a format")
            entry = entry.get("column")
        if not isinstance(entry, str) or not entry:
            raise MappingError(f"{where}: a column must be a non-empty string, got {entry!r}")
        if name == "timestamp":
            convert = _timestamp_converter(fmt, mapping.timezone_offset_min)
        result.append((entry, convert))
    return tuple(result)


# --------------------------------------------------------------------------- ids


def _digits_width(fmt: Any, where: str) -> int:
    """``N`` from an id format ``"digits:N"``."""
    width = fmt[len(DIGITS_FORMAT):] if isinstance(fmt, str) and fmt.startswith(DIGITS_FORMAT) else ""
    if not (width.isascii() and width.isdigit() and 1 <= int(width) <= MAX_DIGITS_WIDTH):
        raise MappingError(f"{where}: an id format must be 'digits:N' with N from 1 to {MAX_DIGITS_WIDTH}, got {fmt!r}")
    return int(width)


def _zero_padded(value: Any, width: int) -> Any:
    """``value`` left-padded with zeros to ``width`` digits if it is all digits and shorter; else as it is.

    >>> _zero_padded("60416207185", 12), _zero_padded(60416207185, 12), _zero_padded("card-7", 12)
    ('060416207185', '060416207185', 'card-7')
    """
    digits = str(value) if type(value) is int and value >= 0 else value  # a JSON number (bool is not one)
    if type(digits) is str and len(digits) < width and digits.isdigit() and digits.isascii():
        return "0" * (width - len(digits)) + digits
    return value


# --------------------------------------------------------------------------- timestamps


def _timestamp_converter(fmt: str, offset_min: int) -> Converter | None:
    """A function from a source timestamp to what validate() takes: epoch ms, or RFC 3339 text."""
    if fmt == "rfc3339":
        return None  # validate() reads it and rejects naive times
    if fmt == "epoch_ms":
        return _epoch_ms
    if fmt == "epoch_s":
        return _epoch_s
    if fmt == "auto":
        return functools.partial(_auto, offset_min=offset_min)
    separator = _ISO_PATTERNS.get(fmt)
    if separator is not None:
        return _iso_pattern(fmt, separator, offset_min)
    return functools.partial(_strptime, pattern=fmt, offset_min=offset_min)


def _from_datetime(moment: datetime, offset_min: int) -> int | str:
    """Epoch ms for UTC times (the cheapest input for validate); RFC 3339 text to keep another offset."""
    if moment.tzinfo is None:
        local_ms = (moment - _EPOCH_NAIVE) // _ONE_MS
        if offset_min == 0:
            return local_ms
        return format_timestamp(local_ms - offset_min * 60_000, offset_min)
    utc_ms = (moment - _EPOCH_UTC) // _ONE_MS
    delta = moment.utcoffset()
    if not delta:
        return utc_ms
    return format_timestamp(utc_ms, delta // _ONE_MINUTE)


def _iso_pattern(pattern: str, separator: str, offset_min: int) -> Converter:
    """A converter for a fixed-width ISO strptime pattern, through fromisoformat (this runs once a row)."""
    from_iso = datetime.fromisoformat
    shift_ms = offset_min * 60_000

    def convert(value: Any) -> int | str:
        if type(value) is str and len(value) == 19 and value[10] == separator and value[4] == "-" and value[16] == ":":
            try:
                local_ms = (from_iso(value) - _EPOCH_NAIVE) // _ONE_MS
            except ValueError:
                pass  # let strptime explain
            else:
                return local_ms if shift_ms == 0 else format_timestamp(local_ms - shift_ms, offset_min)
        return _strptime(value, pattern, offset_min)

    return convert


def _strptime(value: Any, pattern: str, offset_min: int) -> int | str:
    try:
        return _from_datetime(datetime.strptime(str(value), pattern), offset_min)
    except ValueError as error:
        raise InvalidTransaction("timestamp", f"does not match {pattern!r}: {error}") from None


def _auto(value: Any, offset_min: int) -> Any:
    if type(value) is str and not value.isdigit():
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value  # validate() explains what is wrong with it
        if moment.tzinfo is None:
            return _from_datetime(moment, offset_min)
    return value  # RFC 3339 with offset, or epoch ms: validate() reads both


def _epoch_ms(value: Any) -> int:
    if type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        number = _finite(value, "epoch milliseconds")
        if number != int(number):
            raise InvalidTransaction("timestamp", f"epoch milliseconds must be whole, got {value!r}") from None
        return int(number)


def _epoch_s(value: Any) -> int:
    if type(value) is int:
        return value * 1000
    try:
        return int(value) * 1000
    except (TypeError, ValueError):
        return round(_finite(value, "epoch seconds") * 1000)


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidTransaction("timestamp", f"must be {what}, got {str(value)[:64]!r}") from None
    if not math.isfinite(number) or isinstance(value, bool):
        raise InvalidTransaction("timestamp", f"must be {what}, got {str(value)[:64]!r}")
    return number


# --------------------------------------------------------------------------- loading


def load_mapping(path: str | Path) -> ColumnMapping:
    """Read a column mapping from a TOML file (format in the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(f"column mapping file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(f"cannot read column mapping {path}: {error}") from None
    return _parse_toml(text, default_name=path.stem, origin=str(path))


def _parse_toml(text: str, default_name: str, origin: str) -> ColumnMapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError(f"{origin}: not valid TOML: {error}") from None
    try:
        _check_keys(data, _TOP_LEVEL_KEYS, "top level")
        if "columns" not in data:
            raise MappingError("needs a [columns] table")
        timestamp = data.get("timestamp", {})
        if not isinstance(timestamp, dict):
            raise MappingError("'timestamp' must be a table: [timestamp] with format and timezone")
        _check_keys(timestamp, _TIMESTAMP_KEYS, "[timestamp]")
        return ColumnMapping(
            name=data.get("name", default_name),
            columns=data["columns"],
            timestamp_format=timestamp.get("format", "auto"),
            timezone_offset_min=parse_timezone(timestamp.get("timezone", "UTC")),
            defaults=data.get("defaults", {}),
            keep_unmapped=data.get("keep_unmapped", True),
        )
    except MappingError as error:
        raise MappingError(f"{origin}: {error}") from None


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise MappingError(f"{where}: unknown key {key!r} ({hint})")


def parse_timezone(text: Any) -> int:
    """A fixed UTC offset in minutes from ``"UTC"``, ``"Z"``, ``"+05:30"`` or ``"-0300"``.

    >>> parse_timezone("+05:30"), parse_timezone("UTC"), parse_timezone("-03:00")
    (330, 0, -180)
    """
    if isinstance(text, str):
        if text.upper() in ("UTC", "Z"):
            return 0
        digits = text[1:].replace(":", "", 1)
        if len(text) in (5, 6) and text[0] in "+-" and len(digits) == 4 and digits.isdigit() and digits.isascii():
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours <= 23 and minutes <= 59:
                return (hours * 60 + minutes) * (-1 if text[0] == "-" else 1)
    raise MappingError(f"[timestamp] timezone: must be a fixed offset like '+05:30' or 'UTC', got {text!r}")


@functools.lru_cache(maxsize=None)
def _preset(name: str) -> ColumnMapping:
    text = resources.files("fraudstream.services.sources").joinpath("presets", f"{name}.toml").read_text("utf-8")
    return _parse_toml(text, default_name=name, origin=f"preset {name}")


def resolve_format(fmt: str) -> ColumnMapping | None:
    """The mapping for ``fmt``: None for canonical input, a preset by name, or a ``.toml`` mapping file."""
    key = fmt.strip().lower()
    if key == "canonical":
        return None
    if key in FORMATS:
        return _preset(key)
    if key.endswith(".toml"):
        return load_mapping(fmt)
    raise MappingError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}, or the path of a .toml column mapping")
