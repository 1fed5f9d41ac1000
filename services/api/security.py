"""Who may call what: scoring keys score and read alerts, label keys label and read alerts.

Built from the ``[api]`` settings; with no scoring key configured the app refuses to start, unless
``insecure_no_auth`` (local development only) is set. The keys are parsed into digests here and the
settings' secret values are not kept.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import Request

from fraudstream.services.api.auth import ApiKeysMissing, KeyRing, digest
from fraudstream.services.api.errors import ApiError
from fraudstream.services.api.ratelimit import RateLimit
from fraudstream.services.settings import ApiSettings

log = logging.getLogger(__name__)
Scope = Literal["score", "read", "label"]
SCORING_SCOPES: frozenset[str] = frozenset({"score", "read"})
LABEL_SCOPES: frozenset[str] = frozenset({"label", "read"})


class Guard:
    """The two key rings and the check every protected route runs."""

    def __init__(self, scoring: KeyRing, labelling: KeyRing, insecure: bool = False,
                 rate_limit: RateLimit | None = None) -> None:
        self.scoring, self.labelling, self.insecure = scoring, labelling, insecure
        self.rate_limit = rate_limit

    @classmethod
    def from_settings(cls, api: ApiSettings) -> Guard:
        """The rings of ``api``'s keys; raises :class:`ApiKeysMissing` when no scoring key is configured."""
        scoring = KeyRing.from_text(api.keys.get_secret_value() if api.keys else None, api.keys_file)
        labelling = KeyRing.from_text(api.label_keys.get_secret_value() if api.label_keys else None, api.label_keys_file)
        if len(scoring) == 0 and not api.insecure_no_auth:
            raise ApiKeysMissing(
                "no API key configured: set FRAUDSTREAM_API_KEYS (comma-separated keys) or FRAUDSTREAM_API_KEYS_FILE "
                "(a file with one key per line); for local development only, --insecure-no-auth serves without keys")
        if api.insecure_no_auth:
            log.warning("serving WITHOUT API keys (insecure_no_auth): local development only")
        limit = RateLimit(api.rate_limit) if api.rate_limit > 0 else None
        return cls(scoring, labelling, insecure=api.insecure_no_auth, rate_limit=limit)

    def check(self, key: str | None, scope: Scope) -> None:
        """Return if ``key`` may use ``scope``; else raise 401 (no or unknown key), 403 (known, other scope) or
        429 (over the rate limit)."""
        if self.insecure:
            return
        self._allowed(key, scope)
        if self.rate_limit is not None and not self.rate_limit.allow(digest(key or "")):
            raise ApiError(429)

    def _allowed(self, key: str | None, scope: Scope) -> None:
        if key is None:
            raise ApiError(401)
        if self.scoring.knows(key):
            if scope in SCORING_SCOPES:
                return
            raise ApiError(403)
        if self.labelling.knows(key):
            if scope in LABEL_SCOPES:
                return
            raise ApiError(403)
        raise ApiError(401)


def request_key(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; None if neither (another
    Authorization scheme counts as none)."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return (value.strip() or None) if scheme.lower() == "bearer" else None
    key = headers.get("x-api-key")
    return (key.strip() or None) if key else None


def authorize(request: Request, scope: Scope) -> None:
    """Let ``request`` through only with a key of ``scope`` (401/403 otherwise). Routes on the hot path call
    it directly: a plain function costs less than a dependency."""
    request.app.state.guard.check(request_key(request), scope)


def requires(scope: Scope):  # -> a FastAPI dependency
    """A dependency that lets the request through only with a key of ``scope``."""

    async def check(request: Request) -> None:
        authorize(request, scope)

    return check


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The API key, as a header"},
}
PUBLIC_PATHS = ("/healthz", "/readyz")


def document_security(schema: dict) -> dict:
    """Add the two ways to send a key to an OpenAPI document, on every operation but health and readiness."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return schema
