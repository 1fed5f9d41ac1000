"""Duplicate transaction ids: each card remembers its recent ids with a fingerprint of their content.

A retry (the same id with the same content) is recognised and not scored again; a different
transaction reusing an id is a conflict. The memory is part of the card's state, so it is
checkpointed, restored and partitioned with it, and it is bounded: an id is forgotten once the
card has an event more than :data:`ID_WINDOW_MS` newer (an id that old never matches, pruned or not,
so the answers do not depend on when the memory is pruned or the card swept), or once :data:`MAX_IDS_PER_CARD` newer
ids have pushed it out. Event time only, so the same events in the same order give the same answers.

>>> from fraudstream.model.features.state import CardState
>>> from fraudstream.model.schema import validate
>>> card = CardState()
>>> row = {"transaction_id": "t1", "timestamp": 1767225600000, "card_id": "c", "merchant_id": "m", "amount": 5}
>>> remember_id(card, validate(row)), remember_id(card, validate(row)), remember_id(card, validate({**row, "amount": 6}))
(0, 1, 2)
"""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING

import msgspec

from fraudstream.model.features.state import DAY_MS, CardState

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

NEW, RETRY, CONFLICT = 0, 1, 2
ID_WINDOW_MS = DAY_MS
MAX_IDS_PER_CARD = 64

_encode = msgspec.msgpack.encode


def fingerprint(txn: Transaction) -> bytes:
    """A stable 8-byte digest of what the transaction is (when, where, how much, how), not of labels or extras.

    ``is_fraud`` and unknown fields are left out: a retry may carry a later label or delivery metadata.
    """
    content = _encode((
        txn.timestamp_ms, txn.utc_offset_min, txn.merchant_id, txn.amount, txn.currency, txn.merchant_category,
        txn.channel, txn.country, txn.card_lat, txn.card_lon, txn.merchant_lat, txn.merchant_lon, txn.device_id, txn.ip,
    ))
    return blake2b(content, digest_size=8).digest()


def remember_id(card: CardState, txn: Transaction) -> int:
    """:data:`NEW` (now remembered), :data:`RETRY` (same id, same content) or :data:`CONFLICT` (same id, other content)."""
    ids = card.ids
    seen = ids.get(txn.transaction_id)
    digest = fingerprint(txn)
    t = txn.timestamp_ms
    if seen is not None:
        if seen[0] >= t - ID_WINDOW_MS:
            return RETRY if seen[1] == digest else CONFLICT
        del ids[txn.transaction_id]  # older than the window: forgotten, whether or not pruned yet
    if len(ids) >= MAX_IDS_PER_CARD:
        del ids[next(iter(ids))]
    horizon = t - ID_WINDOW_MS
    while ids:
        oldest = next(iter(ids))
        if ids[oldest][0] >= horizon:
            break
        del ids[oldest]
    ids[txn.transaction_id] = (t, digest)
    return NEW
