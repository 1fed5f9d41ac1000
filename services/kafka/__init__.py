"""Kafka adapters: connection settings, topic admin and the producer (kafka-python)."""
