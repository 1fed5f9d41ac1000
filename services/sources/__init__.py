"""Where transactions come from: the synthetic generator and file readers (Kafka later)."""
