"""Which partition a card's transactions land in: Kafka's default partitioner, murmur2 of the key.

The producer keys messages by ``card_id`` (and the Kafka runner's card stage forwards by ``merchant_id``);
this gives, file-side, the partition Kafka's clients choose for a key.
"""

from __future__ import annotations

from fraudstream.model.errors import MissingExtra

try:  # Kafka's own partitioner, so that file-side partitions are exactly the producer's
    from kafka.partitioner.default import murmur2
except ModuleNotFoundError:  # without the [kafka] extra: partition_for says what to install
    murmur2 = None  # type: ignore[assignment]



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
