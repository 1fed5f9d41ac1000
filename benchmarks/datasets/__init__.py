"""Labelled data sets for the quality benchmark, each made by code here (deterministic by seed).

They live beside the benchmark, not in ``services/``: they exist to measure the detector on fraud
mechanisms and column sets other than our own generator's, and are no product feature (the
generator stays the one source the CLI offers). Each data set is a list of validated
transactions in event-time order, with the fraud mechanism as the ``scenario`` extra.

Handbook-like and Sparkov-like rows are written in those simulators' own column layouts and read
through the project's ``handbook`` and ``sparkov`` column mappings, exactly as a user's file is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fraudstream.model.schema import Transaction, validate
from fraudstream.services.sources.mapping import resolve_format

from . import handbook, sparkov, transfers


@dataclass(frozen=True)
class DataSet:
    """A named, labelled stream and what it is meant to test."""

    name: str
    about: str
    txns: list[Transaction]
    has_coordinates: bool
    amount_or_velocity: bool  # whether some fraud is an amount or velocity mechanism (ROC-AUC target applies)


def _through(fmt: str, rows: list[dict[str, Any]]) -> list[Transaction]:
    mapping = resolve_format(fmt)
    if mapping is None:
        return [validate(r) for r in rows]
    return [validate(mapping.apply(r)) for r in rows]


def _generator(cards: int, days: int, fraud_rate: float, seed: int) -> list[Transaction]:
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    return [validate(r) for r in generate(GeneratorConfig(cards=cards, days=days, seed=seed, fraud_rate=fraud_rate))]


def builders(quick: bool = False) -> dict[str, Callable[[], DataSet]]:
    """Name -> a function making that data set; ``quick`` shrinks each to about a sixth."""
    s = 6 if quick else 1

    def handbook_like() -> DataSet:
        rows = handbook.rows(customers=5_000 // s, terminals=10_000 // s, days=30)
        return DataSet("handbook", "5 columns; amount > 220, compromised terminals (28 d), compromised customers x5 (14 d)",
                       _through("handbook", rows), False, True)

    def sparkov_like() -> DataSet:
        rows = sparkov.rows(customers=1_200 // s, days=60)
        return DataSet("sparkov", "categories + coordinates; night episodes of 2-19 txns, $1,000 online / small gas",
                       _through("sparkov", rows), True, True)

    def generator() -> DataSet:
        return DataSet("generator", "our generator's five scenarios (5,000 cards, 30 days, seed 7: the README's set)",
                       _generator(5_000 // s, 30, 0.006, 7), True, True)

    def transfers_like() -> DataSet:
        rows = transfers.rows(accounts=5_000 // s, days=30)
        return DataSet("transfers", "account transfers and cash-outs; takeover drains the balance to a mule who cashes out",
                       _through("canonical", rows), False, True)

    def generator_rare() -> DataSet:
        return DataSet("generator_rare", "our generator at 0.1 % fraud (3,000 cards, 30 days, seed 8)",
                       _generator(3_000 // s, 30, 0.001, 8), True, True)

    def sparkov_rare() -> DataSet:
        rows = sparkov.rows(customers=1_200 // s, days=60, fraud_rate=0.001, seed=14)
        return DataSet("sparkov_rare", "Sparkov-like at 0.1 % fraud", _through("sparkov", rows), True, True)

    def transfers_rare() -> DataSet:
        rows = transfers.rows(accounts=5_000 // s, days=30, fraud_rate=0.001, seed=18)
        return DataSet("transfers_rare", "transfers at 0.1 % fraud", _through("canonical", rows), False, True)

    return {
        "handbook": handbook_like,
        "sparkov": sparkov_like,
        "generator": generator,
        "transfers": transfers_like,
        "generator_rare": generator_rare,
        "sparkov_rare": sparkov_rare,
        "transfers_rare": transfers_rare,
    }
