"""The scoring API: one FastAPI application (:func:`~fraudstream.services.api.app.create_app`) that
``fraudstream serve`` runs under uvicorn, Knative runs as a container and Lambda wraps with an adapter."""
