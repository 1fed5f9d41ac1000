"""The scoring API: one FastAPI application (:func:`~fraudstream.services.api.app.create_app`) that
``fraudstream serve`` runs under uvicorn, Knative runs as a container and Lambda wraps with an adapter."""

from fraudstream.model.errors import require_installed

for _module in ("fastapi", "starlette"):  # the [api] extra; uvicorn is only needed by `serve`
    require_installed(_module, "the scoring API")
