"""The alert-store contract: every backend answers every question the same way.

Search engines are near-real-time, so each write is followed by ``settle`` (the backend's
``refresh()`` where it has one). The in-memory store's :meth:`AlertQuery.matches` is the reference
for filters; each test also states its expected answer outright.
"""

from __future__ import annotations

import random

import pytest
from support import HOUR, T0

from fraudstream.services.stores.alerts.base import Alert, AlertNotFound, AlertQuery, AlertStore
from fraudstream.services.stores.dead_letters import DeadLetter

DAY = 24 * HOUR


def alert(n: int, t_ms: int = T0, *, card: str = "c1", merchant: str = "m1", amount: float = 10.0,
          score: float = 0.6, reasons: tuple[str, ...] = ("amount is 8.3× this card's 30-day average",),
          **record: object) -> Alert:
    base = {"merchant_category": "grocery", "country": "US", "channel": "online",
            "card_lat": 40.7, "card_lon": -74.0, "merchant_lat": 34.0, "merchant_lon": -118.2}
    return Alert(f"t{n:05d}", t_ms, card, merchant, amount, score, 0.55, reasons, "v1",
                 {"transaction_id": f"t{n:05d}", **base, **record})


def settle(store: AlertStore) -> None:
    refresh = getattr(store, "refresh", None)
    if refresh is not None:
        refresh()


def put(store: AlertStore, alerts: list[Alert], letters: list[DeadLetter] = ()) -> None:
    store.write(alerts, letters)
    settle(store)


def ids(alerts: list[Alert]) -> list[str]:
    return [a.transaction_id for a in alerts]


def test_writes_are_idempotent_and_round_trip(store: AlertStore) -> None:
    a = alert(1, reasons=("ünïcødé — 8.3×", "1,240 km"), note="日本語 🙂")
    put(store, [a, alert(2)])
    put(store, [a])
    assert store.count_alerts() == 2
    got = store.get("t00001")
    assert got == a and store.get("nope") is None


def test_dead_letters_are_idempotent_by_source_and_position(store: AlertStore) -> None:
    letter = DeadLetter("file:x.csv", "7", "amount", "must be greater than 0, got -3.0", "t7,...,-3")
    put(store, [], [letter, letter, DeadLetter("file:x.csv", "8", None, "bad row", "x")])
    assert store.count_dead_letters() == 2
    assert store.dead_letters()[0] == letter


def test_search_filters(store: AlertStore) -> None:
    rng = random.Random(3)
    alerts = [
        alert(i, T0 + i * HOUR, card=f"c{i % 3}", merchant=f"m{i % 4}", amount=round(rng.uniform(1, 500), 2),
              score=round(rng.uniform(0.55, 0.9), 4),
              reasons=("card-testing pattern",) if i % 5 == 0 else ("far from home",))
        for i in range(40)
    ]
    put(store, alerts)
    queries = [
        AlertQuery(card_id="c1"),
        AlertQuery(merchant_id="m2", min_score=0.7),
        AlertQuery(min_amount=100, max_amount=300),
        AlertQuery(start_ms=T0 + 5 * HOUR, end_ms=T0 + 15 * HOUR),
        AlertQuery(text="CARD-TESTING"),
        AlertQuery(text="far home"),
        AlertQuery(card_id="c0", text="testing", max_score=0.8),
    ]
    for query in queries:
        expected = sorted((a for a in alerts if query.matches(a)), key=lambda a: (a.timestamp_ms, a.transaction_id), reverse=True)
        page = store.search(query, limit=100)
        assert ids(page.alerts) == ids(expected), query
        assert page.total == len(expected) == store.count_alerts(query)
    assert store.search(AlertQuery(start_ms=T0 + 5 * HOUR, end_ms=T0 + 6 * HOUR)).total == 1  # end is exclusive


@pytest.mark.parametrize("sort", ["time", "score", "amount"])
def test_pages_chain_with_the_cursor_without_gaps_or_repeats(store: AlertStore, sort: str) -> None:
    # Ties on purpose: equal times, scores and amounts must still page deterministically.
    alerts = [alert(i, T0 + (i // 3) * HOUR, score=0.6 + (i % 4) / 100, amount=float(10 * (i % 5))) for i in range(23)]
    put(store, alerts)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search(AlertQuery(), sort=sort, limit=5, cursor=cursor)
        assert page.total == 23
        seen += ids(page.alerts)
        cursor = page.cursor
        if cursor is None:
            break
    key = {"time": lambda a: a.timestamp_ms, "score": lambda a: a.score, "amount": lambda a: a.amount}[sort]
    assert seen == ids(sorted(alerts, key=lambda a: (key(a), a.transaction_id), reverse=True))


def test_labels_are_current_audited_and_survive_rewrites(store: AlertStore) -> None:
    put(store, [alert(1), alert(2)])
    store.set_label("t00001", "unsure", "ana", T0 + 1000, "call the cardholder")
    labelled = store.set_label("t00001", "fraud", "bob", T0 + 2000, "confirmed by phone")
    assert (labelled.label, labelled.labelled_by, labelled.labelled_at_ms, labelled.label_note) == (
        "fraud", "bob", T0 + 2000, "confirmed by phone")
    settle(store)
    assert [(e.label, e.analyst) for e in store.label_history("t00001")] == [("unsure", "ana"), ("fraud", "bob")]
    put(store, [alert(1)])  # a replay rewrites the alert: the review stays
    assert store.get("t00001").label == "fraud"
    assert ids(store.search(AlertQuery(label="fraud")).alerts) == ["t00001"]
    assert ids(store.search(AlertQuery(label="unlabelled")).alerts) == ["t00002"]
    with pytest.raises(AlertNotFound):
        store.set_label("t99999", "fraud", "ana", T0)
    with pytest.raises(ValueError):
        store.set_label("t00002", "maybe", "ana", T0)
    assert store.label_history("t00002") == []


def test_aggregations(store: AlertStore) -> None:
    alerts = [
        alert(1, T0 + 1 * HOUR, card="a", merchant="x", amount=100, score=0.60, merchant_category="travel", country="FR"),
        alert(2, T0 + 1 * HOUR + 5, card="a", merchant="y", amount=50, score=0.70),
        alert(3, T0 + 3 * HOUR, card="b", merchant="x", amount=500, score=0.80, channel=None),
        alert(4, T0 + DAY, card="c", merchant="x", amount=20, score=1.00),
    ]
    put(store, alerts)
    everything = AlertQuery()
    assert store.alerts_over_time(everything, HOUR) == [(T0 + HOUR, 2), (T0 + 3 * HOUR, 1), (T0 + DAY, 1)]
    assert store.alerts_over_time(AlertQuery(end_ms=T0 + DAY), DAY) == [(T0, 3)]
    cards = store.top_entities("card", everything, by="count", limit=2)
    assert [(s.key, s.alerts, s.amount) for s in cards] == [("a", 2, 150.0), ("b", 1, 500.0)]
    by_amount = store.top_entities("card", everything, by="amount", limit=3)
    assert [s.key for s in by_amount] == ["b", "a", "c"]
    assert [s.key for s in store.top_entities("merchant", everything)] == ["x", "y"]
    assert store.histogram("score", everything, [0.5, 0.75, 1.0]) == [2, 2]  # 1.0 lands in the closed last bin
    assert store.histogram("amount", AlertQuery(card_id="a"), [0, 60, 1000]) == [1, 1]
    assert store.count_by("merchant_category", everything) == {"travel": 1, "grocery": 3}
    assert store.count_by("country", everything) == {"FR": 1, "US": 3}
    assert store.count_by("channel", everything) == {"online": 3, "unknown": 1}
    assert store.count_by("hour", everything) == {"01": 2, "03": 1, "00": 1}


def test_bad_requests_are_value_errors(store: AlertStore) -> None:
    with pytest.raises(ValueError):
        store.search(AlertQuery(), sort="random")
    with pytest.raises(ValueError):
        store.search(AlertQuery(), limit=0)
    with pytest.raises(ValueError):
        AlertQuery(label="maybe")
    with pytest.raises(ValueError):
        store.count_by("colour", AlertQuery())
    with pytest.raises(ValueError):
        store.search(AlertQuery(), sort="score", cursor='["time", 1, "t"]')


def test_very_large_fields_round_trip(store: AlertStore) -> None:
    big = alert(1, reasons=tuple(f"reason {i} " + "x" * 500 for i in range(20)), blob="y" * 100_000)
    put(store, [big])
    assert store.get("t00001") == big


def test_recent_alerts_are_the_newest(store: AlertStore) -> None:
    put(store, [alert(i, T0 + i * 1000) for i in range(30)])
    assert ids(store.recent_alerts(3)) == ["t00029", "t00028", "t00027"]


def test_runner_heartbeats_are_idempotent_and_read_since_a_time(store: AlertStore) -> None:
    from fraudstream.services.stores.alerts.base import RunnerStatus

    beats = [RunnerStatus("gen@h:1", T0 + i * 5_000, T0, read=100 * i, scored=100 * i - i, alerts=i, dead_letters=i // 2,
                          rows_per_s=20.0 + i, lag=None if i % 2 else 7, finished=i == 3) for i in range(4)]
    other = RunnerStatus("kafka@h:2", T0 + 7_000, T0 + 1_000, read=5, scored=5, alerts=0, dead_letters=0, rows_per_s=1.5)
    for beat in [*beats, other, beats[1]]:  # one written twice
        store.write_status(beat)
    settle(store)
    assert store.runner_statuses() == [beats[0], beats[1], other, beats[2], beats[3]]
    assert store.runner_statuses(since_ms=T0 + 7_000) == [other, beats[2], beats[3]]
    assert beats[3].alerts_per_1000 == pytest.approx(3 * 1000 / 297)
    assert RunnerStatus("x", 0, 0, 0, 0, 0, 0, 0.0).alerts_per_1000 is None
