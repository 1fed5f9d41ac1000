"""The default paths every command shares, defined once so ``make demo`` then ``fraudstream run`` just works.

The demo trains the default model (``var/demo/model``), which ``run``, ``score``, ``evaluate`` and
the dashboard then use unless told otherwise. The demo keeps its own alert store and checkpoint
under ``var/demo``; ``run`` writes to ``var/alerts.db`` (its checkpoint beside it), which is also
what ``fraudstream dashboard`` shows, so a ``run`` after the demo never meets the demo's
checkpoint of another source. Paths are relative to the working directory.

>>> str(MODEL_DIR), STORE, str(demo_paths(DEMO_DIR).store)
('var/demo/model', 'var/alerts.db', 'var/demo/alerts.db')
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

WORKSPACE = Path("var")
DEMO_DIR = WORKSPACE / "demo"


class DemoPaths(NamedTuple):
    """Where the demo keeps each of its files inside its directory."""

    history: Path
    model: Path
    store: Path
    checkpoint: Path
    dashboard_log: Path


def demo_paths(directory: Path) -> DemoPaths:
    """The demo's files in ``directory`` (the demo's ``--dir``)."""
    return DemoPaths(
        history=directory / "history.csv",
        model=directory / "model",
        store=directory / "alerts.db",
        checkpoint=directory / "alerts.checkpoint",
        dashboard_log=directory / "dashboard.log",
    )


MODEL_DIR = demo_paths(DEMO_DIR).model  # the model `make demo` trains
STORE = str(WORKSPACE / "alerts.db")  # run's alert store and the dashboard's
KAFKA_STATE_DIR = WORKSPACE / "kafka-state"  # the Kafka runners' per-partition snapshots
# A card partition read to its end for this long stops holding back the Kafka merchant stage's merge
# (services/runners/kafka_stages.py): the most a quiet topic delays merchant features and alerts.
KAFKA_QUIET_S = 2.0
