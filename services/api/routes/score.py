"""``POST /v1/score`` and ``POST /v1/score/batch``: the verdict on transactions, alerts written to the store."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from fraudstream.services.api.errors import ApiError
from fraudstream.services.api.schemas import EXAMPLE_TRANSACTION, BatchIn, BatchOut, Problem, ScoreOut, TransactionIn
from fraudstream.services.api.scoring import Outcome, ScoringService
from fraudstream.services.api.security import authorize

router = APIRouter(prefix="/v1", tags=["score"])  # each route authorises first (the hot path: no dependency)
RETRY_HEADER = "X-Fraudstream-Retry"  # "1" when the answer is the first answer to an earlier request
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown one."},
    403: {"model": Problem, "description": "The key may not score."},
    409: {"model": Problem, "description": "The transaction_id was already used by another transaction."},
    413: {"model": Problem, "description": "The body (or the batch) is larger than the limit."},
    422: {"model": Problem, "description": "Not a valid transaction: the field and the problem, as in dead letters."},
    429: {"model": Problem, "description": "Over this key's rate limit (api.rate_limit); retry after a second."},
    503: {"model": Problem, "description": "The model is not loaded yet."},
}


def _body_doc(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """The request body's documentation (the body itself is read raw and validated by the pipeline core)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}}


TRANSACTION_SCHEMA = TransactionIn.model_json_schema()
BATCH_SCHEMA = {"title": "BatchIn", "type": "object", "required": ["transactions"], "description": BatchIn.__doc__,
                "properties": {"transactions": {"type": "array", "items": TRANSACTION_SCHEMA}}}


def service_of(request: Request) -> ScoringService:
    """The process's scoring service; 503 until the model is loaded."""
    service = request.app.state.runtime.service
    if service is None:
        raise ApiError(503)
    return service


async def _run(service: ScoringService, work: Any, *args: Any) -> Any:
    """Run on the event loop with the in-memory state (microseconds of CPU, serialised anyway), in a worker
    thread with a remote state store (network round trips must not block the loop)."""
    if service.thread_safe:
        return await run_in_threadpool(work, *args)
    return work(*args)


async def _store(service: ScoringService, outcomes: list[Outcome]) -> None:
    alerts = [o.alert for o in outcomes if o.alert is not None]
    letters = [o.letter for o in outcomes if o.letter is not None]
    if alerts or letters or service.pending:
        await run_in_threadpool(service.write, alerts, letters)


@router.post("/score", response_model=ScoreOut, responses=REFUSALS, summary="Score one transaction",
             openapi_extra=_body_doc(TRANSACTION_SCHEMA, EXAMPLE_TRANSACTION))
async def score(request: Request) -> Response:
    """The verdict on one transaction in the canonical layout; an alert is written to the alert store.

    A retry (same ``transaction_id``, same content) gets the first answer again and is not counted twice."""
    authorize(request, "score")
    service = service_of(request)
    outcome: Outcome = await _run(service, service.score_json, await request.body())
    await _store(service, [outcome])
    headers = {RETRY_HEADER: "1"} if outcome.retry else None
    return Response(_encode(outcome.body), status_code=outcome.status, media_type="application/json", headers=headers)


@router.post("/score/batch", response_model=BatchOut, responses=REFUSALS, summary="Score several transactions",
             openapi_extra=_body_doc(BATCH_SCHEMA, {"transactions": [EXAMPLE_TRANSACTION]}))
async def score_batch(request: Request) -> Response:
    """Each transaction in order; each gets its verdict, or its refusal (field and reason) in its place."""
    authorize(request, "score")
    service = service_of(request)
    try:
        data = _decode(await request.body())
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise ApiError(422, "body", f"not valid JSON: {error}") from None
    if type(data) is not dict or type(data.get("transactions")) is not list:
        raise ApiError(422, "transactions", "is required: a list of transactions")
    items = data["transactions"]
    limit = request.app.state.settings.api.max_batch
    if len(items) > limit:
        raise ApiError(413, "transactions", f"holds {len(items)} transactions, more than the limit of {limit}")
    outcomes: list[Outcome] = await _run(service, service.score_many, items)
    await _store(service, outcomes)
    results = [o.body if o.status == 200 else {"error": o.body} for o in outcomes]
    return Response(_encode({"results": results}), media_type="application/json")
