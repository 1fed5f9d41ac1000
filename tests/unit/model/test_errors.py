"""The exception tree: every project exception derives from FraudstreamError, keeps its stdlib base, and is drawn."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import fraudstream.model
import fraudstream.model.errors as errors
import fraudstream.services
from fraudstream.model.errors import (
    DataIntegrityError,
    FraudstreamError,
    InputError,
    MissingExtra,
    ServiceError,
    require,
    require_installed,
)

FAMILIES = [InputError, ServiceError, DataIntegrityError, MissingExtra]
PRIVATE_CONTROL_FLOW = {"_StoppedWhileStoreDown"}  # a runner's internal signal, never raised out of it


def project_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in fraudstream.model and fraudstream.services (the modules that import)."""
    found: dict[str, type[BaseException]] = {}
    for package in (fraudstream.model, fraudstream.services):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            try:
                module = importlib.import_module(info.name)
            except ImportError:  # pragma: no cover - an extra missing here; test_optional_imports covers that
                continue
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                    found[name] = obj
    return found


EXCEPTIONS = project_exceptions()


def drawn_tree() -> dict[str, str]:
    """``{class name: family name}`` as the module docstring draws it."""
    tree: dict[str, str] = {}
    family = ""
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"\s+(?:[│ ]\s+)?[├└]── (\w+)", line)
        if match and re.match(r"\s+[├└]── ", line):
            family = match.group(1)
            tree[family] = "FraudstreamError"
        elif match:
            tree[match.group(1)] = family
    return tree


def test_the_walk_finds_the_exceptions() -> None:
    assert {"InvalidTransaction", "TopicError", "StoreUnavailable", "CheckpointMismatch", "MissingExtra"} <= set(EXCEPTIONS)


@pytest.mark.parametrize("name", sorted(set(EXCEPTIONS) - PRIVATE_CONTROL_FLOW))
def test_every_project_exception_is_a_fraudstream_error_in_one_family_as_drawn(name: str) -> None:
    cls = EXCEPTIONS[name]
    assert issubclass(cls, FraudstreamError)
    if cls in (FraudstreamError, *FAMILIES):
        return
    family = [f for f in FAMILIES if issubclass(cls, f)]
    assert len(family) == 1, family
    assert drawn_tree().get(name) == family[0].__name__, "draw it under its family in model/errors.py's docstring"


def test_the_drawing_names_only_real_classes() -> None:
    assert set(drawn_tree()) <= set(EXCEPTIONS)
    assert {f.__name__ for f in FAMILIES} <= set(drawn_tree())


@pytest.mark.parametrize(
    ("name", "stdlib"),
    [("InvalidTransaction", ValueError), ("UnknownDetector", ValueError), ("FileFormatError", ValueError),
     ("MappingError", ValueError), ("RejectedDocuments", ValueError), ("AlertNotFound", KeyError),
     ("NotFitted", AttributeError), ("StoreUnavailable", ConnectionError), ("KafkaUnavailable", ConnectionError),
     ("RequestFailed", RuntimeError), ("TopicError", RuntimeError), ("CheckpointMismatch", RuntimeError),
     ("MissingExtra", ImportError)],
)
def test_each_keeps_its_stdlib_base(name: str, stdlib: type[BaseException]) -> None:
    assert issubclass(EXCEPTIONS[name], stdlib)  # so existing `except ValueError` call sites keep working


def test_exit_codes_are_distinct_per_family() -> None:
    codes = [f.exit_code for f in (FraudstreamError, *FAMILIES)]
    assert codes == [1, 2, 3, 4, 5]


def test_require_names_the_extra_and_keeps_the_cause() -> None:
    with pytest.raises(MissingExtra) as info:
        require("sklearn_that_does_not_exist.metrics", "a test feature")
    assert str(info.value) == ("a test feature needs sklearn_that_does_not_exist, which is not installed: "
                               "pip install 'fraudstream[all]'")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_require_installed_does_not_import() -> None:
    require_installed("json", "a test feature")
    with pytest.raises(MissingExtra, match=r"pip install 'fraudstream\[all\]'"):
        require_installed("no_such_module_anywhere", "a test feature")


def test_missing_extra_maps_each_optional_library_to_its_extra() -> None:
    assert [MissingExtra(m, "x").extra for m in ("kafka.errors", "opensearchpy", "pandas", "sklearn.ensemble")] == [
        "kafka", "search", "dashboard", "train"]
