"""Data access for the dashboard: the alert store and model bundle named by the settings, plus table helpers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
import streamlit as st

from fraudstream.model.reasons import is_thin_history
from fraudstream.services.settings import PathsSettings, Settings, StoreSettings, load_settings
from fraudstream.services.stores.alerts import AlertStore, open_store
from fraudstream.services.stores.alerts.base import Alert

STORE_ENV = StoreSettings.env_name("url")  # FRAUDSTREAM_STORE, set by `fraudstream dashboard --store`
MODEL_ENV = PathsSettings.env_name("model")  # FRAUDSTREAM_MODEL


def settings() -> Settings:
    """The same settings as every command (environment and ``$FRAUDSTREAM_CONFIG``), read on each page run."""
    return load_settings()


def store_url() -> str:
    """The alert store the dashboard reads: ``store.url``, by default the SQLite file ``fraudstream run`` writes."""
    return settings().store.url


def model_dir() -> str:
    """The model bundle the dashboard describes: ``paths.model``, by default the one ``make demo`` trains."""
    return str(settings().paths.model)


@st.cache_resource(show_spinner=False)
def _open(url: str) -> AlertStore:
    return open_store(url, settings())


def get_store() -> AlertStore:
    """One shared store per URL for all sessions (the store backends are thread-safe for reads and labels)."""
    return _open(store_url())


@st.cache_resource(show_spinner=False)
def _model(directory: str) -> dict[str, Any] | None:
    from fraudstream.model.bundle import BundleError, load_bundle

    try:
        bundle = load_bundle(directory)
    except (BundleError, OSError):
        return None
    meta = dict(bundle.metadata or {})
    return {
        "version": meta.get("version", "unknown"),
        "threshold": bundle.threshold,
        "features": len(bundle.feature_names),
        "feature_names": list(bundle.feature_names),
        "created_at": meta.get("created_at"),
        "alert_rate": meta.get("alert_rate"),
        "metrics": meta.get("metrics", {}),
        "detector": meta.get("detector", {}),
    }


def model_summary() -> dict[str, Any] | None:
    """Version, threshold, training date and metrics of the model bundle, or None when there is none."""
    return _model(model_dir())


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def card_label(alert: Alert, markdown: bool = False) -> str:
    """How a card is shown: its masked number (``card_display``, first 6 and last 4 digits at most) when its id
    is a keyed hash of a card number, else its id; in ``markdown`` a masked number is code (its ``*`` kept)."""
    shown = alert.record.get("card_display") if isinstance(alert.record, dict) else None
    if not isinstance(shown, str) or not shown:
        return alert.card_id
    return f"`{shown}`" if markdown else shown


def alerts_frame(alerts: list[Alert], full: bool = False) -> pd.DataFrame:
    """A table of alerts: time (UTC), card, merchant, amount, score, "thin" when raised while the card had too
    little history, first reason (and more when ``full``)."""
    rows = []
    for a in alerts:
        row: dict[str, Any] = {
            "transaction": a.transaction_id,
            "time (UTC)": utc(a.timestamp_ms),
            "card": card_label(a),
            "merchant": a.merchant_id,
            "amount": round(a.amount, 2),
            "score": round(a.score, 4),
            "history": "thin" if is_thin_history(a.reasons) else "",
            "why": a.reasons[0] if a.reasons else "",
        }
        if full:
            row.update({"all reasons": " | ".join(a.reasons), "label": a.label or "", "labelled by": a.labelled_by or "",
                        "model": a.model_version, "threshold": a.threshold})
        rows.append(row)
    columns = ["transaction", "time (UTC)", "card", "merchant", "amount", "score", "history", "why"]
    if full:
        columns += ["all reasons", "label", "labelled by", "model", "threshold"]
    return pd.DataFrame(rows, columns=columns)
