"""Run the docstring examples of every fraudstream module that has some, imported under its real package name.

Only modules with examples are collected (so each test runs at least one); the list is checked against
modules known to carry examples, so a finder that silently finds nothing fails instead of passing.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fraudstream.model
import fraudstream.services

MODULES = sorted(
    info.name
    for package in (fraudstream.model, fraudstream.services)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)
KNOWN_WITH_EXAMPLES = {  # a few modules whose docstrings carry examples today
    "fraudstream.services.kafka.partitioning",
    "fraudstream.services.stores.alerts.search_engine",
}


def _has_examples(name: str) -> bool:
    return any(test.examples for test in doctest.DocTestFinder().find(importlib.import_module(name)))


WITH_EXAMPLES = [name for name in MODULES if _has_examples(name)]


def test_modules_with_examples_are_found() -> None:
    assert KNOWN_WITH_EXAMPLES <= set(WITH_EXAMPLES), sorted(KNOWN_WITH_EXAMPLES - set(WITH_EXAMPLES))


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no example ran in {name}"
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
