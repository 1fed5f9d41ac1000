"""``/v1/alerts``: the alert store's search (the dashboard Search page's filters and cursor), one alert with
its label audit trail, and labelling (the same trail the dashboard writes)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from fraudstream.model.schema import InvalidTransaction, format_timestamp, parse_timestamp
from fraudstream.services.api.errors import ApiError
from fraudstream.services.api.schemas import AlertDetailOut, AlertPageOut, LabelIn, Problem
from fraudstream.services.api.security import requires
from fraudstream.services.stores.alerts.base import LABELS, SORTS, UNLABELLED, Alert, AlertQuery, AlertStore

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown one."},
    403: {"model": Problem, "description": "The key's scope does not allow this."},
    422: {"model": Problem, "description": "A bad filter or cursor: the field and the problem."},
    503: {"model": Problem, "description": "Not ready."},
}


def _store(request: Request) -> AlertStore:
    service = request.app.state.runtime.service
    if service is None:
        raise ApiError(503)
    store: AlertStore = service.store
    return store


def _ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)[0]
    except InvalidTransaction as error:
        raise ApiError(422, name, error.reason) from None


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API shows it (times in RFC 3339, UTC)."""
    return {
        "transaction_id": alert.transaction_id, "timestamp": format_timestamp(alert.timestamp_ms),
        "card_id": alert.card_id, "merchant_id": alert.merchant_id, "amount": alert.amount, "score": alert.score,
        "threshold": alert.threshold, "reasons": list(alert.reasons), "model_version": alert.model_version,
        "record": alert.record, "label": alert.label, "labelled_by": alert.labelled_by,
        "labelled_at": format_timestamp(alert.labelled_at_ms) if alert.labelled_at_ms is not None else None,
        "label_note": alert.label_note,
    }


def _detail(store: AlertStore, alert: Alert) -> dict[str, Any]:
    history = [{"label": e.label, "analyst": e.analyst, "at": format_timestamp(e.at_ms), "note": e.note}
               for e in store.label_history(alert.transaction_id)]
    return {**alert_json(alert), "history": history}


@router.get("", response_model=AlertPageOut, responses=REFUSALS, dependencies=[Depends(requires("read"))],
            summary="Search alerts (newest / highest first, paged with a cursor)")
def search(
    request: Request,
    card_id: str | None = Query(None, max_length=256),
    merchant_id: str | None = Query(None, max_length=256),
    min_score: float | None = Query(None, ge=0, le=1),
    max_score: float | None = Query(None, ge=0, le=1),
    min_amount: float | None = Query(None, ge=0, le=1e9),
    max_amount: float | None = Query(None, ge=0, le=1e9),
    start: str | None = Query(None, description="Event time from (inclusive), RFC 3339.", examples=["2026-02-01T00:00:00Z"]),
    end: str | None = Query(None, description="Event time to (exclusive), RFC 3339."),
    label: str | None = Query(None, description=f"One of {', '.join((*LABELS, UNLABELLED))}."),
    text: str | None = Query(None, max_length=256, description="Words that must all appear in the reasons."),
    sort: str = Query("time", description=f"One of {', '.join(SORTS)} (descending)."),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=1024, description="The previous page's cursor."),
) -> dict[str, Any]:
    if label is not None and label not in (*LABELS, UNLABELLED):
        raise ApiError(422, "label", f"must be one of {', '.join((*LABELS, UNLABELLED))}, got {label!r}")
    if sort not in SORTS:
        raise ApiError(422, "sort", f"must be one of {', '.join(SORTS)}, got {sort!r}")
    query = AlertQuery(card_id=card_id, merchant_id=merchant_id, min_score=min_score, max_score=max_score,
                       min_amount=min_amount, max_amount=max_amount, start_ms=_ms(start, "start"),
                       end_ms=_ms(end, "end"), label=label, text=text)
    try:
        page = _store(request).search(query, sort=sort, limit=limit, cursor=cursor)
    except ValueError:
        raise ApiError(422, "cursor", "is not a cursor of this search (pass back the previous page's cursor)") from None
    return {"alerts": [alert_json(a) for a in page.alerts], "total": page.total, "cursor": page.cursor}


@router.get("/{transaction_id}", response_model=AlertDetailOut, dependencies=[Depends(requires("read"))],
            responses={**REFUSALS, 404: {"model": Problem, "description": "No alert with that transaction_id."}},
            summary="One alert with its label history")
def get_alert(request: Request, transaction_id: str) -> dict[str, Any]:
    store = _store(request)
    alert = store.get(transaction_id)
    if alert is None:
        raise ApiError(404)
    return _detail(store, alert)


@router.post("/{transaction_id}/labels", response_model=AlertDetailOut, dependencies=[Depends(requires("label"))],
             responses={**REFUSALS, 404: {"model": Problem, "description": "No alert with that transaction_id."}},
             summary="Label an alert (fraud, legitimate, unsure); kept in its audit trail")
def label_alert(request: Request, transaction_id: str, body: LabelIn) -> dict[str, Any]:
    store = _store(request)
    if store.get(transaction_id) is None:
        raise ApiError(404)
    alert = store.set_label(transaction_id, body.label, body.analyst, at_ms=int(time.time() * 1000), note=body.note)
    return _detail(store, alert)
