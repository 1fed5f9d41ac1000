"""fraudstream's exceptions: one root, four families, one exit code per family.

Every exception the project raises on purpose derives from :class:`FraudstreamError` *and* keeps
the standard base it always had (``InvalidTransaction`` is still a ``ValueError``,
``StoreUnavailable`` still a ``ConnectionError``), so ``except ValueError`` keeps working. The
``fraudstream`` command prints one that escapes a command as a single ``error: ...`` line and
exits with its family's code; any other exception is a bug and keeps its traceback. The tree
(``tests/unit/model/test_errors.py`` checks it against the code)::

    FraudstreamError                 exit 1
    ├── InputError                   exit 2  bad input or usage: a record, a file, a mapping, a name
    │   ├── InvalidTransaction       model/schema.py                  (ValueError)
    │   ├── UnknownDetector          model/detectors/registry.py      (ValueError)
    │   ├── FileFormatError          services/sources/files.py        (ValueError)
    │   ├── MappingError             services/sources/mapping.py      (ValueError)
    │   ├── AlertNotFound            services/stores/alerts/base.py   (KeyError)
    │   ├── CardKeyMissing           services/pipeline/cards.py
    │   ├── UnknownStateStore        services/stores/state/registry.py (ValueError)
    │   ├── RejectedDocuments        services/stores/alerts/base.py   (ValueError)
    │   ├── PackagingError           services/packaging/lambda_zip.py
    │   ├── PackageTooLarge          services/packaging/lambda_zip.py (a PackagingError)
    │   ├── SettingsError            services/settings.py             (ValueError)
    │   ├── ApiKeysMissing           services/api/auth.py             (ValueError)
    │   └── ApiError                 services/api/errors.py  (a request the API refuses, with its HTTP status)
    ├── ServiceError                 exit 3  a service (Kafka, a search engine) is unreachable or refuses
    │   ├── StoreUnavailable         services/stores/alerts/base.py   (ConnectionError)
    │   ├── RequestFailed            services/stores/alerts/search_engine.py (RuntimeError)
    │   ├── TransportFailure         services/stores/alerts/search_engine.py
    │   ├── KafkaUnavailable         services/kafka/topics.py         (ConnectionError)
    │   ├── StateStoreUnavailable    services/stores/state/errors.py  (ConnectionError)
    │   ├── TopicError               services/kafka/topics.py         (RuntimeError)
    │   └── StoreNeverAnswered       services/runners/store_writes.py (RuntimeError)
    ├── DataIntegrityError           exit 4  a model bundle or checkpoint is missing, damaged or mismatched
    │   ├── BundleError              model/bundle.py
    │   ├── NotFitted                model/detectors/base.py          (ValueError, AttributeError)
    │   └── CheckpointMismatch       services/runners/checkpoint.py   (RuntimeError)
    └── MissingExtra                 exit 5  a feature whose optional dependencies are not installed
                                              (ImportError; this module)

This module imports nothing but the standard library: it sits in ``model/``, the lowest layer.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import ClassVar

__all__ = [
    "EXTRAS",
    "DataIntegrityError",
    "FraudstreamError",
    "InputError",
    "MissingExtra",
    "ServiceError",
    "exit_codes",
    "require",
    "require_installed",
]


class FraudstreamError(Exception):
    """The root of every exception fraudstream raises on purpose; ``exit_code`` is the CLI's exit status."""

    exit_code: ClassVar[int] = 1
    meaning: ClassVar[str] = "an unexpected error (a bug: it shows its traceback)"


class InputError(FraudstreamError):
    """Bad input or usage: a record, a file, a column mapping, an option or a name that cannot be used."""

    exit_code = 2
    meaning = "bad input or usage"


class ServiceError(FraudstreamError):
    """A service the run depends on (Kafka, Elasticsearch, OpenSearch, the alert store) is unreachable or refuses."""

    exit_code = 3
    meaning = "a service is unreachable or refuses"


class DataIntegrityError(FraudstreamError):
    """A model bundle, detector or checkpoint that is missing, damaged, or does not match what it should."""

    exit_code = 4
    meaning = "a model bundle or checkpoint is missing, damaged or does not match"


# Top-level module -> the extra that installs it (pyproject.toml's [project.optional-dependencies]).
EXTRAS: dict[str, str] = {
    "kafka": "kafka",
    "crc32c": "kafka",
    "elasticsearch": "search",
    "opensearchpy": "search",
    "streamlit": "dashboard",
    "altair": "dashboard",
    "pandas": "dashboard",
    "sklearn": "train",
    "redis": "api",
    "fastapi": "api",
    "starlette": "api",
    "uvicorn": "api",
    "mangum": "api",
}


class MissingExtra(FraudstreamError, ImportError):
    """A feature was used without the optional dependencies it needs; the message says what to install."""

    exit_code = 5
    meaning = "a feature's optional dependencies are not installed"

    def __init__(self, module: str, feature: str) -> None:
        top = module.split(".")[0]
        self.extra = EXTRAS.get(top, "all")
        self.feature = feature
        super().__init__(
            f"{feature} needs {top}, which is not installed: pip install 'fraudstream[{self.extra}]'", name=top
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.feature))

    @classmethod
    def from_error(cls, error: ModuleNotFoundError, feature: str = "this command") -> MissingExtra | None:
        """The MissingExtra for an import of an optional library that failed, or None for any other module."""
        top = (error.name or "").split(".")[0]
        return cls(top, feature) if top in EXTRAS else None


def require(module: str, feature: str) -> ModuleType:
    """Import optional ``module`` (e.g. ``"kafka.errors"``) for ``feature``, or raise :class:`MissingExtra`.

    >>> require("json", "a doctest").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise (MissingExtra.from_error(error, feature) or MissingExtra(module, feature)) from error


def require_installed(module: str, feature: str) -> None:
    """Check that optional ``module`` is installed without importing it (for a library run in a subprocess)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise MissingExtra(module, feature)


def exit_codes() -> list[tuple[int, str]]:
    """``(code, meaning)`` of each family, in order: what ``fraudstream --help`` and the README list."""
    families = [FraudstreamError, InputError, ServiceError, DataIntegrityError, MissingExtra]
    return [(0, "success"), *((f.exit_code, f.meaning) for f in families)]
