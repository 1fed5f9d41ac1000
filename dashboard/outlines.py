"""Country and US-state outlines for the Map page, from TopoJSON files shipped in the package (see maps/NOTICE.md).

Each TopoJSON arc is a stretch of border or coast shared by its neighbours, so drawing every arc once draws every
outline once. Arcs are decoded to longitude/latitude, cut where they cross the antimeridian, and thinned to the
detail a view can show, so a chart carries a few thousand points, not tens of thousands.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MAPS = Path(__file__).with_name("maps")
LAYERS = {"country": "countries-110m.json", "state": "states-10m.json"}  # state: US states only


@dataclass(frozen=True)
class Box:
    """A longitude/latitude rectangle (degrees)."""

    west: float
    south: float
    east: float
    north: float

    def meets(self, other: Box) -> bool:
        return self.west <= other.east and other.west <= self.east and self.south <= other.north and other.south <= self.north


Line = tuple[Box, tuple[tuple[float, float], ...]]


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    """The arcs of a quantized TopoJSON topology as absolute (longitude, latitude) points.

    >>> decode_arcs({"transform": {"scale": [0.5, 0.25], "translate": [-10, 20]}, "arcs": [[[0, 0], [2, 4], [1, -4]]]})
    [[(-10.0, 20.0), (-9.0, 21.0), (-8.5, 20.0)]]
    """
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def split_at_antimeridian(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Pieces of a line that never jump across the map (a step of more than 180° of longitude starts a new piece).

    >>> split_at_antimeridian([(178.0, 1.0), (179.5, 1.0), (-179.5, 1.0), (-178.0, 1.0)])
    [[(178.0, 1.0), (179.5, 1.0)], [(-179.5, 1.0), (-178.0, 1.0)]]
    """
    pieces: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if pieces[-1] and abs(point[0] - pieces[-1][-1][0]) > 180:
            pieces.append([])
        pieces[-1].append(point)
    return [piece for piece in pieces if len(piece) > 1]


@functools.cache
def lines(layer: str) -> tuple[Line, ...]:
    """Every outline piece of ``layer`` ("country" or "state") with its bounding box; read once per process."""
    topology = json.loads((MAPS / LAYERS[layer]).read_text(encoding="utf-8"))
    result = []
    for arc in decode_arcs(topology):
        for piece in split_at_antimeridian(arc):
            lons, lats = [p[0] for p in piece], [p[1] for p in piece]
            result.append((Box(min(lons), min(lats), max(lons), max(lats)), tuple(piece)))
    return tuple(result)


def thin(points: tuple[tuple[float, float], ...], step: float) -> list[tuple[float, float]]:
    """Drop points closer than ``step`` degrees to the last kept one (the ends always stay).

    >>> thin(((0.0, 0.0), (0.1, 0.0), (0.2, 0.0), (1.0, 0.0), (1.05, 0.0)), step=0.5)
    [(0.0, 0.0), (1.0, 0.0), (1.05, 0.0)]
    """
    kept = [points[0]]
    for lon, lat in points[1:-1]:
        if abs(lon - kept[-1][0]) >= step or abs(lat - kept[-1][1]) >= step:
            kept.append((lon, lat))
    kept.append(points[-1])
    return kept


def outline_frame(view: Box, detail: int = 500) -> pd.DataFrame:
    """Outline points inside ``view`` for a line chart: one row per point with its piece and order, countries and
    (where the view meets them) US states, thinned to about ``detail`` steps across the view."""
    step = max(view.east - view.west, view.north - view.south) / detail
    rows: list[tuple[str, int, int, float, float]] = []
    piece = 0
    for layer in LAYERS:
        for box, points in lines(layer):
            if not box.meets(view):
                continue
            piece += 1
            rows.extend((layer, piece, i, lon, lat) for i, (lon, lat) in enumerate(thin(points, step)))
    return pd.DataFrame(rows, columns=["layer", "piece", "order", "lon", "lat"])
