"""What a shared state store raises when it cannot serve: one type, so the API can fall back to degraded scoring."""

from __future__ import annotations

from fraudstream.model.errors import ServiceError


class StateStoreUnavailable(ServiceError, ConnectionError):
    """The shared feature-state store (Redis) is unreachable, did not answer within its socket timeout, refused
    the command, or stayed too contended to commit; the event was not folded in (or, when the reply to a
    commit was lost, may have been: the message says which)."""
