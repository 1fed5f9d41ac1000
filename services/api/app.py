"""The app factory: ``create_app(settings) -> FastAPI``, what ``fraudstream serve``, Knative and Lambda all run.

The API keys are checked when the app is built (none configured: it refuses, see
:mod:`~fraudstream.services.api.security`); the model bundle and the stores are loaded once per
process when it starts (the lifespan), and ``/readyz`` says so.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fraudstream.services.api import errors
from fraudstream.services.api.limits import BodyLimitMiddleware
from fraudstream.services.api.metrics import ApiMetrics, MetricsMiddleware
from fraudstream.services.api.routes import alerts, health, score
from fraudstream.services.api.runtime import Runtime
from fraudstream.services.api.security import Guard, document_security, requires
from fraudstream.services.settings import Settings, load_settings

log = logging.getLogger(__name__)
API_VERSION = "1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The scoring API over ``settings`` (default: :func:`~fraudstream.services.settings.load_settings`,
    i.e. ``FRAUDSTREAM_*`` variables and ``$FRAUDSTREAM_CONFIG``).

    Raises :class:`~fraudstream.services.api.auth.ApiKeysMissing` when no API key is configured (and
    ``api.insecure_no_auth`` is not set)."""
    settings = settings if settings is not None else load_settings()
    guard = Guard.from_settings(settings.api)
    metrics = ApiMetrics()
    runtime = Runtime(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.flush)

    app = FastAPI(
        title="fraudstream scoring API", version=API_VERSION, lifespan=lifespan,
        description="Real-time fraud scores for card transactions, the alerts they raise, and analysts' labels. "
                    "Every endpoint but /healthz and /readyz needs an API key (Authorization: Bearer KEY or X-API-Key).",
        docs_url=None, redoc_url=None, openapi_url=None,  # the schema is served below, behind a key
        # fastapi's own OpenTelemetry hooks look up the global providers on every request; our figures are
        # the Prometheus metrics below, so they are off (a few per cent of a request's CPU)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings, app.state.guard, app.state.metrics, app.state.runtime = settings, guard, metrics, runtime
    errors.install(app)
    app.include_router(health.router)
    app.include_router(score.router)
    app.include_router(alerts.router)

    def openapi_document() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_security(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi_document  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(requires("read"))])
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    origins = settings.api.origins
    if origins:  # CORS is off unless origins are configured
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodyLimitMiddleware, limit=settings.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts 413s too
    return app
