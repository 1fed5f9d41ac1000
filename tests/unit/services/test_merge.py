"""OrderedMerge: whatever the interleaving of its ordered inputs, one order out."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.services.pipeline.merge import OrderedMerge

# Each source: a strictly increasing list of keys (what a card partition forwards, in offset order).
sources = st.lists(st.lists(st.integers(0, 10_000), unique=True, max_size=30).map(sorted), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(sources, st.randoms(use_true_random=False), st.booleans())
def test_any_interleaving_releases_every_item_once_in_key_order(inputs, rng, with_marks) -> None:
    merge: OrderedMerge[tuple[int, int]] = OrderedMerge(len(inputs))
    cursors = [0] * len(inputs)
    released: list[tuple[int, int]] = []
    while any(c < len(keys) for c, keys in zip(cursors, inputs)):
        s = rng.choice([s for s, keys in enumerate(inputs) if cursors[s] < len(keys)])
        key = inputs[s][cursors[s]]
        cursors[s] += 1
        released += merge.add(s, (key, s), (key, s))
        if with_marks and rng.random() < 0.3:  # a mark repeats how far the source got: it changes nothing
            released += merge.watermark(s, (key, s))
    for s in range(len(inputs)):
        released += merge.idle(s)
    assert released == sorted((k, s) for s, keys in enumerate(inputs) for k in keys)
    assert merge.pending == 0 and merge.late == 0


def test_a_source_that_said_nothing_holds_everything_back_until_it_is_idle_or_passes() -> None:
    merge: OrderedMerge[str] = OrderedMerge(3)
    assert merge.add(0, (1,), "a") == [] and merge.add(1, (2,), "b") == []
    assert merge.watermark(2, (1,)) == ["a"]  # source 2 has got to 1: "a" can go, "b" (2) waits
    assert merge.idle(2) == [] and merge.add(0, (3,), "c") == ["b"]
    assert merge.add(2, (2,), "d") == ["d"]  # woke up behind what was released: late, taken at once
    assert merge.late == 1


def test_the_snapshot_restores_pending_items_and_marks() -> None:
    merge: OrderedMerge[str] = OrderedMerge(2)
    merge.add(0, (1,), "a")
    merge.add(0, (4,), "b")
    plain = msgspec.msgpack.decode(msgspec.msgpack.encode(merge.snapshot()))
    restored: OrderedMerge[str] = OrderedMerge(1)
    restored.restore(plain)
    assert restored.pending == 2 and restored.add(1, (5,), "c") == ["a", "b"]
    assert merge.add(1, (5,), "c") == ["a", "b"]
