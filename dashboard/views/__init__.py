"""The dashboard's pages, in sidebar order: a page is one module with ``render(store)`` and one line here."""

from __future__ import annotations

from collections.abc import Callable

from fraudstream.dashboard.views import alert, high_risk, live, map, model, review, search, trends
from fraudstream.services.stores.alerts import AlertStore

PAGES: dict[str, Callable[[AlertStore], None]] = {
    "Live": live.render,
    "High risk": high_risk.render,
    "Trends": trends.render,
    "Map": map.render,
    "Search": search.render,
    "Alert": alert.render,
    "Review": review.render,
    "Model": model.render,
}
