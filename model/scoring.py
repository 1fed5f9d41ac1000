"""The pure middle of every runtime: features → detector → decision, over state the caller owns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fraudstream.model.detectors.base import ExplainsScores
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore
from fraudstream.model.policy import Decision, is_alert
from fraudstream.model.reasons import TEMPLATES, explain, thin_history

if TYPE_CHECKING:
    from fraudstream.model.bundle import ModelBundle
    from fraudstream.model.schema import Transaction


class Scorer:
    """Scores transactions in arrival order with a model bundle; never reads ``is_fraud``.

    The feature state is any :class:`~fraudstream.model.features.store.StateStore` (in memory by default).

    Batches are scored together (the fast path), but each transaction's features depend only on
    those before it, so batch size never changes an answer. The alert decision is
    :func:`~fraudstream.model.policy.is_alert`; reasons use the detector's per-feature
    contributions when it has them (:class:`ExplainsScores`) and the training statistics alone
    otherwise.
    """

    def __init__(self, bundle: ModelBundle, state: StateStore | None = None, max_reasons: int = 3) -> None:
        self.bundle = bundle
        self.state: StateStore = state if state is not None else FeatureState()
        self.max_reasons = max_reasons
        self._stats = bundle.metadata.get("training_stats", {})
        detector = bundle.detector
        self._contributions = detector.feature_contributions if isinstance(detector, ExplainsScores) else None

    def features(self, txns: Sequence[Transaction]) -> np.ndarray:
        """Feature rows of ``txns`` in order, moving the state past them."""
        return np.array(self.state.features_many(txns), dtype=np.float64).reshape(len(txns), -1)

    def decide_batch(self, txns: Sequence[Transaction]) -> list[Decision]:
        """One decision per transaction, in order; alerts carry reasons."""
        if not txns:
            return []
        return self.decide_rows(txns, self.features(txns))

    def decide_rows(self, txns: Sequence[Transaction], X: np.ndarray) -> list[Decision]:
        """Decisions for ``txns`` whose feature rows ``X`` were computed elsewhere (the Kafka runner's merchant
        stage joins the card half and the merchant half); the state does not move."""
        if not txns:
            return []
        scores = self.bundle.score_many(X)
        alerts = is_alert(scores, self.bundle.threshold)
        decisions = []
        for i, txn in enumerate(txns):
            if alerts[i]:
                decisions.append(Decision(txn.transaction_id, float(scores[i]), True, self.reasons(txn, X[i])))
            else:
                decisions.append(Decision(txn.transaction_id, float(scores[i]), False))
        return decisions

    def decide(self, txn: Transaction) -> Decision:
        """The single-transaction path (an API request): same answer as in a batch."""
        x = self.state.features(txn)
        score = self.bundle.score_one(x)
        if is_alert(score, self.bundle.threshold):
            return Decision(txn.transaction_id, score, True, self.reasons(txn, np.asarray(x)))
        return Decision(txn.transaction_id, score, False)

    def reasons(self, txn: Transaction, x: np.ndarray) -> tuple[str, ...]:
        """Why ``txn`` scored high, in words (computed only for alerts); an alert on a card with too little
        history ends with the thin-history marker, since such scores say more about the missing history."""
        contributions = self._contributions(x) if self._contributions is not None else None
        reasons = explain(txn, x, contributions, self._stats, self.max_reasons)
        marker = thin_history(x)
        if marker is None:
            return reasons
        return tuple(r for r in reasons if r != TEMPLATES["card_history_log"](x, txn)) + (marker,)
