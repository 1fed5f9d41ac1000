"""Who may call what: scoring keys score and read alerts, label keys label and read alerts.

Built from the ``[api]`` settings; with no scoring key configured the app refuses to start, unless
``insecure_no_auth`` (local development only) is set. The keys are parsed into digests here and the
settings' secret values are not kept.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from fraudstream.services.api.auth import ApiKeysMissing, KeyRing
from fraudstream.services.api.errors import ApiError
from fraudstream.services.settings import ApiSettings

log = logging.getLogger(__name__)
Scope = Literal["score", "read", "label"]
SCORING_SCOPES: frozenset[str] = frozenset({"score", "read"})
LABEL_SCOPES: frozenset[str] = frozenset({"label", "read"})

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, as a header")


class Guard:
    """The two key rings and the check every protected route runs."""

    def __init__(self, scoring: KeyRing, labelling: KeyRing, insecure: bool = False) -> None:
        self.scoring, self.labelling, self.insecure = scoring, labelling, insecure

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
        return cls(scoring, labelling, insecure=api.insecure_no_auth)

    def check(self, key: str | None, scope: Scope) -> None:
        """Return if ``key`` may use ``scope``; else raise 401 (no or unknown key) or 403 (known, other scope)."""
        if self.insecure:
            return
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


def _key(credentials: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    if credentials is not None and credentials.credentials.strip():
        return credentials.credentials.strip()
    if header is not None and header.strip():
        return header.strip()
    return None


def requires(scope: Scope):  # -> a FastAPI dependency
    """A dependency that lets the request through only with a key of ``scope``."""

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                    header: str | None = Depends(api_key_header)) -> None:
        if request.headers.get("authorization") and credentials is None:  # a scheme other than Bearer
            raise ApiError(401)
        request.app.state.guard.check(_key(credentials, header), scope)

    return check
