"""AWS Lambda entry point of the scoring API: ``lambda_handler`` runs the app of ``fraudstream serve`` behind
API Gateway (REST API v1 and HTTP API v2 events) through Mangum.

Asking for ``lambda_handler`` is the container's init, done once (the runtime client asks when it
starts, before the first event; so does the zip's root module when Lambda imports it): it reads the API
keys (from the environment, or from Secrets Manager when ``FRAUDSTREAM_API_KEYS_SECRET_ARN`` names a
secret; likewise the label keys and the OpenSearch password), builds the app, and loads the model bundle
and the stores. Mangum's lifespan is off because Mangum would run the app's startup and
shutdown around every invocation (closing the stores each time); the runtime is started here instead.

The deployment zip (``fraudstream package-lambda``) puts a ``lambda_function.py`` at its root that
re-exports this handler, so Lambda's handler setting is ``lambda_function.lambda_handler``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from mangum import Mangum

from fraudstream.model.errors import ServiceError
from fraudstream.services.api.app import create_app

# Variable naming a Secrets Manager secret -> the settings variable its SecretString fills.
SECRET_VARIABLES = {
    "FRAUDSTREAM_API_KEYS_SECRET_ARN": "FRAUDSTREAM_API_KEYS",
    "FRAUDSTREAM_API_LABEL_KEYS_SECRET_ARN": "FRAUDSTREAM_API_LABEL_KEYS",
    "FRAUDSTREAM_OPENSEARCH_PASSWORD_SECRET_ARN": "FRAUDSTREAM_OPENSEARCH_PASSWORD",
}


def load_secrets(environ: MutableMapping[str, str] | None = None, client: Any = None) -> list[str]:
    """Fill each key variable from the secret its ``*_SECRET_ARN`` variable names, unless the key variable is
    already set; return the variables filled. ``client`` is a Secrets Manager client (default: boto3's, which
    Lambda's Python runtime provides). The secret's value never reaches a message or a log."""
    environ = os.environ if environ is None else environ
    wanted = {arn: key for arn, key in SECRET_VARIABLES.items() if environ.get(arn) and not environ.get(key)}
    if not wanted:
        return []
    if client is None:
        import boto3  # part of Lambda's managed Python runtime, so not in the zip

        client = boto3.client("secretsmanager")
    for arn, key in wanted.items():
        try:
            environ[key] = client.get_secret_value(SecretId=environ[arn])["SecretString"]
        except Exception as error:  # botocore's errors, whatever their class: name the secret, not its value
            raise ServiceError(f"cannot read the secret {environ[arn]} named by {arn}: {type(error).__name__}") from None
    return list(wanted.values())


def build_handler() -> Mangum:
    """The Lambda handler over a started app: keys read, model and stores loaded (raises what they raise)."""
    load_secrets()
    app = create_app()
    app.state.runtime.start()
    return Mangum(app, lifespan="off")


def __getattr__(name: str) -> Any:
    """``lambda_handler``, built on first access; importing the module alone (docs, tests) starts nothing."""
    if name == "lambda_handler":
        handler = build_handler()
        globals()["lambda_handler"] = handler  # later lookups find it directly
        return handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
