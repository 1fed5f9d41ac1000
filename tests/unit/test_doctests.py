"""Run the docstring examples of every fraudstream module, imported under its real package name."""

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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
