"""Helpers for tests against a real Redis (imported as ``redis_support``): a private Redis a test may kill,
a database of a test's own in the shared one, skewed events on one hot card and merchant, and the comparison
of a shared state with a sequential run that holds whatever order the events were processed in."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from math import exp, isclose
from pathlib import Path
from typing import Any

from support import BASE, ROOT, T0

from fraudstream.model.features.state import MONTH_MS, CardState, MerchantState

SCRIPT = ROOT / "scripts" / "services" / "redis"
DATABASES = 16  # Redis' default number of logical databases
CLAIM_KEY = "fraudstream-test:claimed-by"  # outside every store prefix, so no snapshot sees it

# Decayed sums: the same in any processing order, up to float rounding (late events are weighed by their
# age instead of decaying the state, which is the same sum computed in another order).
CARD_SUMS = ("c1h", "c1d", "c7d", "amount_1d", "n30", "amount_30", "log_30", "log_sq_30", "small_1h")
MERCHANT_SUMS = ("c1h", "c1d", "c7d", "n30", "amount_30")


def run_script(command: str, port: int, var: Path) -> str:
    """``scripts/services/redis COMMAND`` for a private instance on ``port`` with its files under ``var``;
    its last stdout line (the URL after ``start``)."""
    env = {**os.environ, "REDIS_PORT": str(port), "REDIS_VAR_DIR": str(var)}
    done = subprocess.run([str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@contextmanager
def own_database(url: str) -> Iterator[str]:
    """The URL of an empty logical database of the Redis at ``url`` (``redis://host:port/N``), claimed for the
    block with a key outside every store prefix and flushed after it: a store opened from a URL alone (its
    default key prefix) sees no other test's keys."""
    import redis

    base = url.rsplit("/", 1)[0]
    mark = uuid.uuid4().hex
    for db in range(1, DATABASES):
        client = redis.Redis.from_url(f"{base}/{db}")
        try:
            if client.set(CLAIM_KEY, mark, nx=True):
                if client.dbsize() == 1:
                    break
                client.delete(CLAIM_KEY)  # unclaimed, but not empty: keys someone left behind
        finally:
            client.close()
    else:
        raise RuntimeError(f"no empty database left in the Redis at {base}: tests flush their own when done, so "
                           "killed tests left keys behind (scripts/services/redis reset starts it empty)")
    try:
        yield f"{base}/{db}"
    finally:
        client = redis.Redis.from_url(f"{base}/{db}")
        try:
            client.flushdb()
        finally:
            client.close()


def command_calls(url: str, command: str) -> int:
    """How many times the Redis at ``url`` ran ``command`` since it started (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0))


def hot_rows(n: int = 1500, seed: int = 11) -> list[dict[str, Any]]:
    """One hot card and one hot merchant (each in three quarters of the events), distinct event times,
    arriving shuffled so the processing order is not the event-time order."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = rng.random()
        if r < 0.5:
            card, merchant = "card-hot", "m-hot"
        elif r < 0.75:
            card, merchant = "card-hot", f"m-{rng.randrange(5)}"
        else:
            card, merchant = f"card-{rng.randrange(20)}", "m-hot"
        rows.append({
            **BASE, "transaction_id": f"t{i}", "timestamp": T0 + i * 45_000 + rng.randrange(30_000),
            "card_id": card, "merchant_id": merchant,
            "amount": rng.choice([1.5, 3.0, round(rng.lognormvariate(3.0, 1.0), 2), 900.0]),
            "merchant_category": rng.choice(["grocery", "travel", "electronics"]),
            "country": rng.choice(["US", "GB"]),
            "merchant_lat": rng.choice([40.71, 34.05, None]),
        })
    rng.shuffle(rows)
    return rows


def assert_same_card(got: CardState, want: CardState, key: str) -> None:
    """What a card's state must agree on whatever order its events were processed in."""
    assert (got.t, got.seen) == (want.t, want.seen), key  # exact: a lost update shows here
    for name in CARD_SUMS:
        assert isclose(getattr(got, name), getattr(want, name), rel_tol=1e-9, abs_tol=1e-12), (key, name)
    # Hour blocks hold weights relative to hour_ref (the first event *processed*): compare them on one base.
    assert got.hour_ref is not None and want.hour_ref is not None
    scale_got, scale_want = exp((got.hour_ref - T0) / MONTH_MS), exp((want.hour_ref - T0) / MONTH_MS)
    for a, b in zip(got.hour_blocks, want.hour_blocks, strict=True):
        assert isclose(a * scale_got, b * scale_want, rel_tol=1e-9, abs_tol=1e-12), key
    assert (got.last_lat, got.last_lon, got.last_loc_t) == (want.last_lat, want.last_lon, want.last_loc_t), key
    # Recency order depends on processing order; membership does not (no cap is reached here).
    assert (set(got.merchants), set(got.categories), set(got.countries)) == \
        (set(want.merchants), set(want.categories), set(want.countries)), key


def assert_same_merchant(got: MerchantState, want: MerchantState, key: str) -> None:
    """What a merchant's state must agree on whatever order its events were processed in."""
    assert got.t == want.t, key
    for name in MERCHANT_SUMS:
        assert isclose(getattr(got, name), getattr(want, name), rel_tol=1e-9, abs_tol=1e-12), (key, name)
    # Not compared: new_cards_1h weighs each card's *first processed* event at the merchant by its age, so it
    # depends on the order by construction; that it counts at all is checked.
    assert got.new_cards_1h > 0 and want.new_cards_1h > 0


def assert_same_state(snapshot: dict[str, Any], sequential: Any) -> None:
    """A shared store's ``snapshot()`` holds the same cards and merchants as a sequential in-memory
    :class:`~fraudstream.model.features.keyed.FeatureState`, each agreeing on what no processing order changes."""
    assert set(snapshot["cards"]) == set(sequential.cards) and set(snapshot["merchants"]) == set(sequential.merchants)
    for key, values in snapshot["cards"].items():
        assert_same_card(CardState.from_list(values), sequential.cards[key], key)
    for key, values in snapshot["merchants"].items():
        assert_same_merchant(MerchantState.from_list(values), sequential.merchants[key], key)
