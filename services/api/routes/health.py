"""Liveness, readiness (model loaded, state and alert stores reachable) and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fraudstream.services.api.schemas import HealthOut
from fraudstream.services.api.security import requires

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "checks": {}}


def _reachable(store: Any, probe: str) -> str:
    try:
        ping = getattr(store, "ping", None)
        if ping is not None:
            ping()
        else:
            value = getattr(store, probe)  # a property (read) or a method (called)
            if callable(value):
                value()
    except Exception:
        return "unreachable"
    return "ok"


@router.get("/readyz", response_model=HealthOut, summary="Readiness: model loaded; stores reachable",
            responses={503: {"model": HealthOut, "description": "The model is not loaded yet."}})
async def readyz(request: Request) -> JSONResponse:
    """503 until the model is loaded. An unreachable state or alert store makes the status ``degraded`` but
    keeps the instance ready: it still answers (from the transaction alone), which beats failing payments."""
    service = request.app.state.runtime.service
    if service is None:
        return JSONResponse({"status": "starting", "checks": {"model": "not loaded"}}, status_code=503)
    checks = {
        "model": "ok",
        "state_store": await run_in_threadpool(_reachable, service.state, "newest_ms"),
        "alert_store": await run_in_threadpool(_reachable, service.store, "count_dead_letters"),
    }
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return JSONResponse({"status": status, "checks": checks})


@router.get("/metrics", summary="Prometheus metrics of this process", dependencies=[Depends(requires("read"))],
            response_class=Response)
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)
