"""Runner-side store writes: outages are waited out with backoff, refusals become dead letters."""

from __future__ import annotations

import time

import pytest
from support import T0

from fraudstream.services.runners.store_writes import (
    MAX_BACKOFF_S,
    REJECTED_SOURCE,
    StoreNeverAnswered,
    StoreWait,
    write_batch,
)
from fraudstream.services.stores.alerts.base import Alert, RejectedDocuments, StoreUnavailable
from fraudstream.services.stores.alerts.memory import MemoryAlertStore


def alert(n: int) -> Alert:
    return Alert(f"t{n}", T0, "c", "m", 1.0, 0.9, 0.5, ("r",), "v", {"transaction_id": f"t{n}", "merchant_lat": 123})


class FlakyStore(MemoryAlertStore):
    """Down for the first ``outages`` writes, then refuses ``refuse`` ids once and stores the rest."""

    def __init__(self, outages: int = 0, refuse: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.outages, self.refuse, self.calls = outages, set(refuse), 0

    def write(self, alerts, dead_letters=()):
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("connection refused")
        refused = [(a.transaction_id, "geo_point out of range") for a in alerts if a.transaction_id in self.refuse]
        super().write([a for a in alerts if a.transaction_id not in self.refuse], dead_letters)
        if refused:
            raise RejectedDocuments(refused)


def test_an_outage_is_waited_out_with_growing_backoff() -> None:
    store, sleeps = FlakyStore(outages=4), []
    assert write_batch(store, [alert(1)], [], stopping=lambda: False, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert store.count_alerts() == 1


def test_stop_while_the_store_is_down_reports_not_stored() -> None:
    store = FlakyStore(outages=100)
    assert not write_batch(store, [alert(1)], [], stopping=lambda: store.calls >= 3, sleep=lambda s: None)
    assert store.count_alerts() == 0


def test_refused_alerts_become_dead_letters_and_the_rest_is_stored() -> None:
    store = FlakyStore(refuse=("t2",))
    assert write_batch(store, [alert(1), alert(2), alert(3)], [], stopping=lambda: False, sleep=pytest.fail)
    assert sorted(store.alerts) == ["t1", "t3"]
    (letter,) = store.letters.values()
    assert (letter.source, letter.position) == (REJECTED_SOURCE, "t2")
    assert "geo_point out of range" in letter.reason and '"merchant_lat": 123' in letter.raw


# --------------------------------------------------------------------------- how long to wait for a store


class FakeClock:
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class SilentStore(FlakyStore):
    """A store that reports whether it ever answered (as the search-engine stores do)."""

    def __init__(self, outages: int, answered: bool) -> None:
        super().__init__(outages=outages)
        self.answered = answered


def test_a_store_that_never_answered_ends_the_wait_after_the_first_contact_time() -> None:
    store, clock = SilentStore(outages=1000, answered=False), FakeClock()
    wait = StoreWait(store, lambda: False, first_contact_s=60, clock=clock)
    with pytest.raises(StoreNeverAnswered, match=r"has not answered in the 60 s since the run started \(connection refused\)"):
        write_batch(store, [alert(1)], [], wait=wait, sleep=clock.sleep)
    assert 60 <= clock.now - 1000 < 60 + MAX_BACKOFF_S
    assert store.count_alerts() == 0


def test_a_store_that_answered_once_is_waited_for_through_an_outage_of_any_length() -> None:
    store, clock = SilentStore(outages=20, answered=True), FakeClock()
    wait = StoreWait(store, lambda: False, first_contact_s=60, clock=clock)
    assert write_batch(store, [alert(1)], [], wait=wait, sleep=clock.sleep)
    assert clock.now - 1000 > 5 * 60 and store.count_alerts() == 1  # far past the first-contact time


def test_a_batch_stored_once_counts_as_an_answer() -> None:
    store, clock = SilentStore(outages=0, answered=False), FakeClock()
    wait = StoreWait(store, lambda: False, first_contact_s=60, clock=clock)
    assert write_batch(store, [alert(1)], [], wait=wait, sleep=clock.sleep)
    store.outages = 20
    assert write_batch(store, [alert(2)], [], wait=wait, sleep=clock.sleep)
    assert clock.now - 1000 > 5 * 60 and store.count_alerts() == 2


def test_without_a_first_contact_time_a_silent_store_is_waited_for() -> None:
    store, clock = SilentStore(outages=20, answered=False), FakeClock()
    wait = StoreWait(store, lambda: False, first_contact_s=None, clock=clock)
    assert write_batch(store, [alert(1)], [], wait=wait, sleep=clock.sleep)
    assert clock.now - 1000 > 5 * 60


def test_the_backoff_sleep_wakes_as_soon_as_a_stop_is_asked() -> None:
    asked = iter([False, False, True])
    wait = StoreWait(MemoryAlertStore(), lambda: next(asked, True), first_contact_s=None)
    started = time.monotonic()
    wait.sleep(MAX_BACKOFF_S)
    assert time.monotonic() - started < MAX_BACKOFF_S / 2  # woke at the third look, not after the backoff


def test_a_store_that_retries_on_its_own_is_told_when_to_give_up() -> None:
    class Interruptible(MemoryAlertStore):
        check = None

        def set_interrupt(self, check):
            self.check = check

    stop = [False]
    store = Interruptible()
    StoreWait(store, lambda: stop[0], first_contact_s=None)
    assert store.check is not None and not store.check()
    stop[0] = True
    assert store.check()
