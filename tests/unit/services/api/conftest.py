"""Fixtures of the scoring API's unit tests: a small trained bundle on disk and apps built over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fraudstream.model.bundle import ModelBundle, save_bundle
from fraudstream.model.schema import validate
from fraudstream.model.train import feature_matrix, train_bundle
from fraudstream.services.api.app import create_app
from fraudstream.services.settings import load_settings
from fraudstream.services.sources.generator import GeneratorConfig, generate

SCORING_KEY = "score-key-0123456789"
LABEL_KEY = "label-key-9876543210"
SCORING = {"Authorization": f"Bearer {SCORING_KEY}"}
LABELLING = {"X-API-Key": LABEL_KEY}


@pytest.fixture(scope="session")
def rows() -> list[dict[str, Any]]:
    return list(generate(GeneratorConfig(cards=150, days=4, seed=3, start="2026-02-01T00:00:00+00:00")))


@pytest.fixture(scope="session")
def bundle(rows: list[dict[str, Any]]) -> ModelBundle:
    return train_bundle(feature_matrix([validate(r) for r in rows]), created_at="test")


@pytest.fixture(scope="session")
def model_dir(bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("api") / "model"
    save_bundle(bundle, directory)
    return directory


@pytest.fixture
def make_app(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FastAPI]:
    """``make_app(**env)``: an app over the test bundle, a fresh SQLite store and these FRAUDSTREAM_* variables."""
    monkeypatch.chdir(tmp_path)  # the installation's card-id key file lands here, not in the repository

    def make(**env: str) -> FastAPI:
        environ = {"FRAUDSTREAM_MODEL": str(model_dir), "FRAUDSTREAM_STORE": f"sqlite://{tmp_path / 'alerts.db'}",
                   "FRAUDSTREAM_API_KEYS": SCORING_KEY, "FRAUDSTREAM_API_LABEL_KEYS": LABEL_KEY,
                   "FRAUDSTREAM_PIPELINE_NOT_BEFORE": "2026-01-01"}
        environ.update({k: v for k, v in env.items() if v is not None})
        for name in [k for k, v in env.items() if v is None]:
            environ.pop(name, None)
        return create_app(load_settings(environ=environ))

    return make


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c
