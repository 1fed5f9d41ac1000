"""API keys: held only as SHA-256 digests, compared in constant time, rotated without a restart.

Keys come from a comma-separated variable and/or a mounted file (one key per line, ``#`` comments),
re-read at most once a second, so a rotation is: add the new key to
the file, move the callers, remove the old one. Two scopes: scoring keys score and read alerts;
label keys label and read alerts. A key is never logged or echoed.

>>> ring = KeyRing.from_text("k1, k2")
>>> ring.knows("k2"), ring.knows("k3")
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fraudstream.model.errors import InputError

log = logging.getLogger(__name__)
RECHECK_S = 1.0  # how often a keys file's modification time is looked at


class ApiKeysMissing(InputError, ValueError):
    """The API would serve without any key: refused unless insecure mode was asked for explicitly."""


def digest(key: str) -> bytes:
    """The SHA-256 of a key: all the process ever keeps of it."""
    return hashlib.sha256(key.strip().encode("utf-8")).digest()


def parse_keys(text: str) -> frozenset[bytes]:
    """Digests of the keys in ``text``: separated by commas or new lines; blank parts and ``#`` comments skipped."""
    keys = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys.update(digest(part) for part in line.split(",") if part.strip())
    return frozenset(keys)


class KeyRing:
    """The valid keys of one scope: fixed ones (from the environment) plus a file's, re-read on change."""

    def __init__(self, fixed: frozenset[bytes] = frozenset(), path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fixed = fixed
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._from_file: frozenset[bytes] = frozenset()
        self._all = fixed
        self._checked = float("-inf")
        if path is not None:
            self._reload(force=True)

    @classmethod
    def from_text(cls, text: str | None, path: Path | None = None) -> KeyRing:
        return cls(parse_keys(text or ""), path)

    def __len__(self) -> int:
        self._maybe_reload()
        return len(self._all)

    def knows(self, key: str) -> bool:
        """Whether ``key`` is valid now; every stored digest is compared (constant time, no early exit)."""
        self._maybe_reload()
        candidate = digest(key)
        found = False
        for stored in self._all:
            found |= hmac.compare_digest(candidate, stored)
        return found

    def _maybe_reload(self) -> None:
        if self._path is None or self._clock() - self._checked < RECHECK_S:
            return
        self._reload()

    def _reload(self, force: bool = False) -> None:
        # The whole (small) file is read again rather than trusting its modification time: a mounted secret
        # is swapped by a symlink flip, and two writes within the file system's time granularity look alike.
        assert self._path is not None
        with self._lock:
            self._checked = self._clock()
            try:
                text = self._path.read_text(encoding="utf-8")
            except OSError as error:
                if force:
                    raise ApiKeysMissing(f"cannot read the API keys file {self._path}: {error.strerror or error}") from None
                log.warning("cannot re-read the API keys file %s (%s); keeping the keys read before",
                            self._path, error.strerror or error)
                return
            keys = parse_keys(text)
            if keys != self._from_file:
                self._from_file = keys
                self._all = self._fixed | keys
                log.info("API keys file %s read: %d key(s)", self._path, len(keys))
