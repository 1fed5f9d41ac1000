"""Runtimes that drive the pure pipeline over a source."""
