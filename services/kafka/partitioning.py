"""Which partition a card's transactions land in: Kafka's default partitioner, murmur2 of the key.

The producer keys messages by ``card_id``; the batch scorer uses this to reproduce, file-side, the
per-partition state the Kafka runner keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fraudstream.model.errors import MissingExtra
from fraudstream.model.scoring import Scorer

try:  # Kafka's own partitioner, so that file-side partitions are exactly the producer's
    from kafka.partitioner.default import murmur2
except ModuleNotFoundError:  # without the [kafka] extra: partition_for says what to install
    murmur2 = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle
    from fraudstream.model.policy import Decision
    from fraudstream.model.schema import Transaction


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, exactly as Kafka's clients choose it.

    Kafka's Java client hashes "foobar" to -790332482, "abc" to 479470107 and "a-little-bit-longer-string" to
    -1486304829 (its ``UtilsTest.testMurmur2``); ``(hash & 0x7FFFFFFF) % partitions`` then gives:

    >>> partition_for("foobar", 4), partition_for("abc", 6), partition_for("a-little-bit-longer-string", 12)
    (2, 3, 11)
    >>> partition_for("anything", 1)
    0
    """
    if murmur2 is None:
        raise MissingExtra("kafka", "partitioning like Kafka")
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class PartitionedScorer:
    """One :class:`Scorer` (one feature state) per partition, each transaction to its card's partition."""

    def __init__(self, bundle: ModelBundle, partitions: int) -> None:
        self.partitions = partitions
        self.scorers = [Scorer(bundle) for _ in range(partitions)]

    def decide_batch(self, txns: Sequence[Transaction]) -> list[Decision]:
        groups: dict[int, list[int]] = {}
        for i, txn in enumerate(txns):
            groups.setdefault(partition_for(txn.card_id, self.partitions), []).append(i)
        decisions: list[Decision | None] = [None] * len(txns)
        for p, indices in groups.items():
            for i, decision in zip(indices, self.scorers[p].decide_batch([txns[i] for i in indices])):
                decisions[i] = decision
        return decisions  # type: ignore[return-value]
