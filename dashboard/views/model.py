"""Model: the bundle being served (version, training date, threshold, training metrics) and, once analysts have
labelled alerts, how precise the alerts are and how the scores move over time."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from fraudstream.dashboard.components import DAY_MS, newest_alert_ms
from fraudstream.dashboard.data import model_dir, model_summary
from fraudstream.services.stores.alerts import AlertStore
from fraudstream.services.stores.alerts.base import AlertQuery

BAND_EDGES = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
DAYS = 14


def bands() -> list[str]:
    return [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(BAND_EDGES, BAND_EDGES[1:])]


def review_counts(store: AlertStore) -> dict[str, int]:
    """Reviewed alerts by label, the inputs of precision."""
    return {label: store.count_alerts(AlertQuery(label=label)) for label in ("fraud", "legitimate", "unsure")}


def precision_by_band(store: AlertStore) -> pd.DataFrame:
    """Per score band: confirmed fraud, confirmed legitimate, and precision = fraud / (fraud + legitimate)."""
    fraud = store.histogram("score", AlertQuery(label="fraud"), BAND_EDGES)
    legit = store.histogram("score", AlertQuery(label="legitimate"), BAND_EDGES)
    precision = [f / (f + g) if f + g else None for f, g in zip(fraud, legit)]
    return pd.DataFrame({"score band": bands(), "fraud": fraud, "legitimate": legit, "precision": precision})


def scores_over_time(store: AlertStore, newest_ms: int) -> pd.DataFrame:
    """Alerts per day and score band over the last DAYS days of data (long format, for a stacked chart)."""
    last_day = newest_ms // DAY_MS * DAY_MS
    rows = []
    for day in range(last_day - (DAYS - 1) * DAY_MS, last_day + DAY_MS, DAY_MS):
        counts = store.histogram("score", AlertQuery(start_ms=day, end_ms=day + DAY_MS), BAND_EDGES)
        rows += [{"day (UTC)": pd.to_datetime(day, unit="ms", utc=True), "score band": band, "alerts": n}
                 for band, n in zip(bands(), counts)]
    return pd.DataFrame(rows)


def _model_section() -> float | None:
    model = model_summary()
    if model is None:
        st.warning(f"No model bundle at {model_dir()!r}: train one with fraudstream train (the demo does it for you).")
        return None
    metrics = model["metrics"] or {}
    c1, c2 = st.columns(2)
    c1.metric("Version", model["version"])
    c2.metric("Trained (UTC)", (model["created_at"] or "unknown")[:16].replace("T", " "))
    c3, c4 = st.columns(2)
    c3.metric("Threshold", f"{model['threshold']:.4f}")
    c4.metric("Alert budget", f"{model['alert_rate']:g} per 1,000" if model["alert_rate"] is not None else "unknown")
    detector = model["detector"]
    facts = {"training transactions": metrics.get("n_train"), "alerts per 1,000 on training data": metrics.get("train_alerts_per_1000"),
             "features": model["features"], **detector_facts(detector)}
    train = metrics.get("train") or {}
    facts.update({f"training {k.replace('_', ' ')} (in-sample)": v for k, v in train.items() if isinstance(v, (int, float))})
    st.dataframe(pd.DataFrame({"metric": list(facts), "value": [_fmt(v) for v in facts.values()]}), hide_index=True,
                 key="model_facts")
    roles = feature_roles(detector)
    if roles is not None:
        with st.expander(f"Features: {len(detector.get('used') or {})} used, {len(detector.get('dropped') or {})} left out"):
            st.dataframe(roles, hide_index=True, key="model_features")
    return float(model["threshold"])


def detector_facts(detector: dict[str, Any]) -> dict[str, object]:
    """What kind of detector the bundle holds and how it was trained, as metric rows."""
    facts: dict[str, object] = {"detector": detector.get("kind", "unknown")}
    if detector.get("kind") == "evidence":
        labels = detector.get("labels") or {}
        facts["combined by"] = detector.get("combined_by")
        facts["confirmed frauds in training"] = labels.get("frauds") if labels.get("given") else "no labels"
        if detector.get("mode") == "forest":
            facts["trees"] = (detector.get("settings") or {}).get("n_estimators")
        return facts
    facts["trees"] = detector.get("n_estimators")
    facts["samples per tree"] = detector.get("max_samples")
    return facts


def feature_roles(detector: dict[str, Any]) -> pd.DataFrame | None:
    """One row per feature: used (its direction and, with labels, its weight) or left out and why; None when
    the detector does not record it (the Isolation Forest uses every feature)."""
    used, dropped = detector.get("used"), detector.get("dropped")
    if not isinstance(used, dict) or not isinstance(dropped, dict):
        return None
    weights = detector.get("weights") or {}
    rows = [{"feature": name, "role": f"used: {how}", "weight": weights.get(name)} for name, how in used.items()]
    rows.sort(key=lambda r: -(r["weight"] or 0.0))
    rows += [{"feature": name, "role": f"left out: {why}", "weight": None} for name, why in dropped.items()]
    return pd.DataFrame(rows, columns=["feature", "role", "weight"])


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(store: AlertStore) -> None:
    st.header("Model")
    _model_section()
    st.subheader("Precision of reviewed alerts")
    counts = review_counts(store)
    decided = counts["fraud"] + counts["legitimate"]
    if decided == 0:
        st.info("No alert has been labelled fraud or legitimate yet: precision appears once analysts review alerts.")
    else:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Precision", f"{counts['fraud'] / decided:.1%}")
        c2.metric("Confirmed fraud", f"{counts['fraud']:,}")
        c3.metric("Legitimate", f"{counts['legitimate']:,}")
        c4.metric("Unsure", f"{counts['unsure']:,}")
        bands_frame = precision_by_band(store)
        st.dataframe(bands_frame, hide_index=True, key="model_bands",
                     column_config={"precision": st.column_config.NumberColumn(format="percent")})
    newest = newest_alert_ms(store)
    if newest is None:
        return
    st.subheader(f"Score distribution over the last {DAYS} days")
    frame = scores_over_time(store, newest)
    chart = alt.Chart(frame).mark_bar().encode(
        x=alt.X("day (UTC):T", title="day (UTC)"), y=alt.Y("alerts:Q", title="alerts per day"),
        color=alt.Color("score band:N", scale=alt.Scale(scheme="orangered"), sort=bands(), title="score band"),
        tooltip=["day (UTC):T", "score band:N", "alerts:Q"],
    )
    st.altair_chart(chart)
