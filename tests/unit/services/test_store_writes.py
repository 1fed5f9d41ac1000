"""Runner-side store writes: outages are waited out with backoff, refusals become dead letters."""

from __future__ import annotations

import pytest
from support import T0

from fraudstream.services.runners.store_writes import REJECTED_SOURCE, write_batch
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
