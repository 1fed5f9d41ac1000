"""Adapters and runtimes: sources, stores, runners, CLI. Wiring only; no fraud logic."""
