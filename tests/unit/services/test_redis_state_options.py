"""The Redis state store's options and failure type, without a Redis (a port nothing listens on)."""

from __future__ import annotations

import time

import pytest
from support import free_port, make_txn

from fraudstream.model.errors import ServiceError
from fraudstream.model.features.state import DAY_MS
from fraudstream.services.stores.state import StateStoreUnavailable, open_state_store
from fraudstream.services.stores.state.redis import EXPIRY_MARGIN_MS, RedisStateStore, _glob_escape


def nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_redis_key_expiry_defaults_to_the_ttl_plus_a_margin_and_never_undercuts_it() -> None:
    assert RedisStateStore(30 * DAY_MS, url=nowhere()).expire_after_ms == 30 * DAY_MS + EXPIRY_MARGIN_MS
    assert RedisStateStore(None, url=nowhere()).expire_after_ms is None  # no TTL: nothing expires by default
    assert RedisStateStore(None, url=nowhere(), expire_after_ms=DAY_MS).expire_after_ms == DAY_MS  # opted in
    with pytest.raises(ValueError, match="expire_after_ms"):
        RedisStateStore(30 * DAY_MS, url=nowhere(), expire_after_ms=29 * DAY_MS)
    with pytest.raises(ValueError, match="duplicate-id window"):
        RedisStateStore(DAY_MS - 1, url=nowhere())


def test_an_unreachable_redis_raises_state_store_unavailable_at_once_for_every_call() -> None:
    url = nowhere()
    store = open_state_store("redis", ttl_ms=30 * DAY_MS, url=url, socket_timeout=0.2)  # connects to nothing yet
    assert store.thread_safe
    calls = [lambda: store.features(make_txn()), lambda: store.features_many([make_txn()]),
             lambda: store.remember_id(make_txn()), lambda: store.newest_ms, store.expire, store.snapshot,
             lambda: store.restore({"cards": {}, "merchants": {}}), store.sizes, lambda: len(store)]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StateStoreUnavailable, match=url.removeprefix("redis://")) as raised:
            call()
        assert time.monotonic() - started < 5  # refused: no retry loop behind it
        assert isinstance(raised.value, ServiceError) and isinstance(raised.value, ConnectionError)


def test_the_password_in_a_url_never_reaches_a_message() -> None:
    store = RedisStateStore(None, url=f"redis://:s3cret@127.0.0.1:{free_port()}/0", socket_timeout=0.2)
    with pytest.raises(StateStoreUnavailable) as raised:
        store.features(make_txn())
    assert "s3cret" not in str(raised.value)


def test_key_prefixes_are_matched_literally_by_scans() -> None:
    assert _glob_escape(b"app[1]*:c:") == b"app\\[1\\]\\*:c:"
