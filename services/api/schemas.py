"""The API's request and response bodies, for the generated OpenAPI document (with examples).

Transactions are *validated* by the pipeline core (:func:`~fraudstream.model.schema.validate`), not by
these models, so a refusal names the field in the same words as a dead letter; :class:`TransactionIn`
only documents the canonical layout.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_TRANSACTION: dict[str, Any] = {
    "transaction_id": "t-000123",
    "timestamp": "2026-02-01T08:15:30.123Z",
    "card_id": "card-42",
    "merchant_id": "m-7",
    "amount": 129.9,
    "currency": "EUR",
    "merchant_category": "electronics",
    "channel": "online",
    "country": "FR",
}


class TransactionIn(BaseModel):
    """One transaction in the canonical layout (unknown fields are kept as extras)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE_TRANSACTION]})

    transaction_id: str = Field(description="Unique id; a retry with the same id gets the first answer.")
    timestamp: str = Field(description="Event time, RFC 3339 (or epoch seconds/milliseconds).")
    card_id: str = Field(description="Card id, or a card number (replaced by a keyed id on arrival).")
    merchant_id: str
    amount: float = Field(ge=0)
    currency: str | None = Field(None, description="ISO 4217 code (default USD).")
    merchant_category: str | None = None
    channel: str | None = None
    country: str | None = Field(None, description="ISO 3166 alpha-2 code.")
    card_lat: float | None = None
    card_lon: float | None = None
    merchant_lat: float | None = None
    merchant_lon: float | None = None
    device_id: str | None = None
    ip: str | None = None


class BatchIn(BaseModel):
    """Several transactions, scored in order (up to the configured batch limit)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"transactions": [EXAMPLE_TRANSACTION]}]})

    transactions: list[TransactionIn]


class ScoreOut(BaseModel):
    """The verdict on one transaction."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "transaction_id": "t-000123", "score": 0.71, "alert": True, "threshold": 0.62,
        "reasons": ["amount 129.90 is 8.1x this card's usual"], "model_version": "iforest-20260201",
        "state_available": True, "processing_ms": 0.41,
    }]})

    transaction_id: str
    score: float | None = Field(description="In [0, 1], higher is more suspicious (null only for an unscored retry).")
    alert: bool = Field(description="score >= threshold: the transaction is an alert (stored in the alert store).")
    threshold: float
    reasons: list[str] = Field(description="Why it scored high, in words (alerts only).")
    model_version: str
    state_available: bool = Field(description="False: the card's history was unreachable; scored from the transaction alone.")
    processing_ms: float


class Problem(BaseModel):
    """Why a request was refused: the field and the problem, in the words of the dead-letter reasons."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "invalid transaction", "field": "amount", "reason": "must be 0 or more, got -5.0"}]})

    error: str
    field: str | None = None
    reason: str | None = None


class BatchItemError(BaseModel):
    error: Problem


class BatchOut(BaseModel):
    """One result per transaction, in order: a verdict, or the reason it was refused."""

    results: list[ScoreOut | BatchItemError]


class AlertOut(BaseModel):
    """An alert as the alert store keeps it."""

    transaction_id: str
    timestamp: str
    card_id: str
    merchant_id: str
    amount: float
    score: float
    threshold: float
    reasons: list[str]
    model_version: str
    record: dict[str, Any]
    label: str | None
    labelled_by: str | None
    labelled_at: str | None
    label_note: str | None


class LabelEventOut(BaseModel):
    label: str
    analyst: str
    at: str
    note: str


class AlertDetailOut(AlertOut):
    """An alert with its label audit trail (oldest first)."""

    history: list[LabelEventOut]


class AlertPageOut(BaseModel):
    """One page of search results; pass ``cursor`` back for the next (null: no more)."""

    alerts: list[AlertOut]
    total: int
    cursor: str | None


class LabelIn(BaseModel):
    """An analyst's or a chargeback's decision on an alert, kept in its audit trail."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"label": "fraud", "analyst": "ana@bank", "note": "chargeback 2026-02-03"}]})

    label: Literal["fraud", "legitimate", "unsure"]
    analyst: str = Field(min_length=1, max_length=256)
    note: str = Field("", max_length=4096)


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = {}
