"""Schemathesis against ``fraudstream serve``'s own OpenAPI document: on every route, generated requests (valid
and invalid) sent with a valid API key never get a 5xx nor an answer outside the documented responses.

Each route is one test: Hypothesis draws cases from Schemathesis' strategy for the operation (the schema is
read from the running server, behind its key). Schemathesis' pytest plugin is not used: its lazy loader
(``schemathesis.pytest.from_fixture``) writes a private attribute pytest 9 no longer has. The run is
derandomized (the same cases every time) with 40 examples per route and mode; to explore further, set
``FRAUDSTREAM_SCHEMATHESIS_RANDOM=1`` and ``FRAUDSTREAM_SCHEMATHESIS_EXAMPLES=300`` (about 90 s here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_serve import AUTH, KEY, serving
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

LABEL_KEY = "e2e-label-key-77d0"
EXAMPLES = int(os.environ.get("FRAUDSTREAM_SCHEMATHESIS_EXAMPLES", "40"))  # per route and mode: ~20 s in all
RANDOM = bool(os.environ.get("FRAUDSTREAM_SCHEMATHESIS_RANDOM"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Every route the document lists; a new one fails test_the_document_lists_these_routes until added here.
ROUTES = [
    "GET /healthz", "GET /readyz", "GET /metrics", "POST /v1/score", "POST /v1/score/batch",
    "GET /v1/alerts", "GET /v1/alerts/{transaction_id}", "POST /v1/alerts/{transaction_id}/labels",
]


@pytest.fixture(scope="module")
def api(workdir: Path) -> Iterator[str]:
    """A served API whose scoring key (``KEY``) scores and reads, and whose label key labels."""
    with serving(workdir, "--store", "sqlite://schemathesis.db", env={"FRAUDSTREAM_API_LABEL_KEYS": LABEL_KEY}) as base:
        yield base


@pytest.fixture(scope="module")
def api_schema(api: str) -> Any:
    return schemathesis.openapi.from_url(f"{api}/openapi.json", headers=AUTH, timeout=30)


def test_the_document_lists_these_routes(api_schema: Any) -> None:
    assert sorted(result.ok().label for result in api_schema.get_all_operations()) == sorted(ROUTES)


NO_INPUT = {"GET /healthz", "GET /readyz"}  # nothing to make invalid
CASES = [pytest.param(route, mode, id=f"{route}-{mode.value}")
         for route in ROUTES for mode in GenerationMode if not (mode is GenerationMode.NEGATIVE and route in NO_INPUT)]


@pytest.mark.parametrize("route, mode", CASES)
def test_no_route_answers_a_5xx_or_outside_its_schema(api: str, api_schema: Any, route: str, mode: GenerationMode) -> None:
    method, path = route.split(" ", 1)
    operation = api_schema[path][method]
    key = LABEL_KEY if path.endswith("/labels") else KEY

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=api, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    check()
