"""The card-id key: the configured secret, else this installation's generated key file.

The secret is the settings' ``[card_ids] key`` (``FRAUDSTREAM_CARD_ID_KEY``, at least 16
characters), handed in by the CLI (``services/cli/common.py``'s ``card_ids``; this module reads no
environment). Every runtime that must agree on card ids (producer, runners, score/train, the API,
Spark) needs the same value. Without it, the key
is this installation's own, generated once in ``var/card_id.key`` (owner-only permissions) with a
warning: card numbers are still never stored in clear, but ids only agree between processes that
share that file. The key is read only when a card number is actually seen, and never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from fraudstream.model.errors import InputError
from fraudstream.services.defaults import WORKSPACE
from fraudstream.services.pipeline.cards import CardIds

__all__ = ["KEY_ENV", "KEY_FILE", "MIN_KEY_CHARS", "card_id_key", "card_ids"]

KEY_ENV = "FRAUDSTREAM_CARD_ID_KEY"
KEY_FILE = WORKSPACE / "card_id.key"
MIN_KEY_CHARS = 16

log = logging.getLogger(__name__)


def card_id_key(secret: str | None, key_file: Path = KEY_FILE) -> bytes:
    """The HMAC key for card ids: the configured ``secret``, else this installation's generated key file."""
    value = secret or ""
    if value:
        if len(value) < MIN_KEY_CHARS:
            raise InputError(f"{KEY_ENV} must be at least {MIN_KEY_CHARS} characters (a random secret)")
        return value.encode("utf-8")
    key = _installation_key(key_file)
    log.warning("%s is not set: card numbers are hashed with this installation's key in %s; set the variable "
                "to the same secret on every runtime that must agree on card ids", KEY_ENV, key_file)
    return key


def card_ids(secret: Callable[[], str | None], key_file: Path = KEY_FILE) -> CardIds:
    """The :class:`CardIds` every edge hands to the pipeline core; ``secret`` is called on the first card number."""
    return CardIds(lambda: card_id_key(secret(), key_file))


def _installation_key(path: Path) -> bytes:
    """Read ``path``, or create it once (atomically: concurrent processes end up with the same key)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)  # fails if another process won the race: use its key
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_KEY_CHARS:
        raise InputError(f"the card-id key file {path} is damaged (too short): delete it only if no stored id must match")
    return key.encode("utf-8")
