"""AWS Lambda entry point of the scoring API: ``lambda_handler`` runs the app of ``fraudstream serve`` behind
API Gateway (REST API v1 and HTTP API v2 events) through Mangum.

Building the handler is the container's init, done once (the runtime client asks for ``lambda_handler``
when it starts, before the first event; the zip's root module builds it when Lambda imports it): it reads
the settings from the environment like every runtime, fetches the secrets that ``*_SECRET_ARN`` variables
name from Secrets Manager (the API keys, the label keys, the OpenSearch password: never environment
values on Lambda), builds the app, and loads the model bundle and the stores. Mangum's lifespan is off
because Mangum would run the app's startup and shutdown around every invocation (closing the stores each
time); the runtime is started here instead.

The deployment zip (``fraudstream package-lambda``) has a ``lambda_function.py`` at its root that builds
this handler with the bundle packaged beside it, so Lambda's handler setting is
``lambda_function.lambda_handler``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudstream.model.errors import ServiceError, require
from fraudstream.services.settings import Settings, env_names, load_settings

if TYPE_CHECKING:
    from mangum import Mangum

FEATURE = "the Lambda handler"
require("mangum", FEATURE)  # without the [api] extra, importing this module says what to install

# Variable naming a Secrets Manager secret -> the setting its SecretString fills.
SECRET_VARIABLES = {
    "FRAUDSTREAM_API_KEYS_SECRET_ARN": "api.keys",
    "FRAUDSTREAM_API_LABEL_KEYS_SECRET_ARN": "api.label_keys",
    "FRAUDSTREAM_OPENSEARCH_PASSWORD_SECRET_ARN": "opensearch.password",
}


def secrets(environ: Mapping[str, str], client: Any = None) -> dict[str, str]:
    """``{setting: value}`` for each secret a ``*_SECRET_ARN`` variable names, unless the setting's own variable
    is set. ``client`` is a Secrets Manager client (default: boto3's, part of Lambda's Python runtime). A
    failure names the secret, never a value."""
    variable_of = {key: name for name, key in env_names().items()}
    wanted = {arn: key for arn, key in SECRET_VARIABLES.items() if environ.get(arn) and not environ.get(variable_of[key])}
    if wanted and client is None:
        import boto3  # in Lambda's managed runtime, so not in the zip
        from botocore.config import Config

        # Lambda allows an init 10 s: fail with the secret's name (no route to Secrets Manager from a VPC,
        # say) rather than wait out botocore's 60 s default.
        client = boto3.client("secretsmanager", config=Config(connect_timeout=3, read_timeout=3,
                                                               retries={"max_attempts": 2}))
    values = {}
    for arn, key in wanted.items():
        try:
            values[key] = client.get_secret_value(SecretId=environ[arn])["SecretString"]
        except Exception as error:  # botocore's errors, whatever their class: name the secret, not its value
            raise ServiceError(f"cannot read the secret {environ[arn]} named by {arn}: {type(error).__name__}") from None
    return values


def lambda_settings(environ: Mapping[str, str], *, bundle: Path | None = None, client: Any = None) -> Settings:
    """The settings of this container: the environment's, the secrets filled in, and ``bundle`` as the model
    unless ``FRAUDSTREAM_MODEL`` (or the settings file) names one."""
    overrides: dict[str, Any] = dict(secrets(environ, client))
    settings = load_settings(environ=environ, overrides=overrides)
    if bundle is not None and settings.origin("paths.model") == "default":
        settings = load_settings(environ=environ, overrides={**overrides, "paths.model": bundle})
    return settings


def build_handler(bundle: Path | None = None) -> Mangum:
    """The Lambda handler over a started app: keys read, model and stores loaded (raises what they raise)."""
    from mangum import Mangum

    from fraudstream.services.api.app import create_app

    app = create_app(lambda_settings(os.environ, bundle=bundle))
    app.state.runtime.start()
    return Mangum(app, lifespan="off")


def __getattr__(name: str) -> Any:
    """``lambda_handler``, built on first access; importing the module alone (docs, tests) starts nothing."""
    if name == "lambda_handler":
        handler = build_handler()
        globals()["lambda_handler"] = handler  # later lookups find it directly
        return handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
