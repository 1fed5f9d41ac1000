"""A feature's training distribution as a small table: the share of training rows at or beyond a value.

Serving needs numpy only: ``knots`` (increasing values) and ``log_tail`` (log of the share of
training rows >= each knot), interpolated in between. Beyond the largest training value the
evidence keeps growing, by one nat per ``spread`` (the 50-99 % quantile gap), so values past the
training range still rank in order instead of tying.

>>> table = TailTable.fit(np.arange(1000.0))
>>> round(float(table.neg_log_tail(np.array([899.0]))[0]), 2)  # 101 of 1,000 rows are >= 899: -log(102/1001)
2.28
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LEVELS = np.unique(np.r_[np.linspace(0.0, 0.99, 100), 1.0 - np.logspace(-2, -6, 41), 1.0])


@dataclass(frozen=True)
class TailTable:
    """Upper-tail probabilities of one training column, compressed to at most ~140 knots."""

    knots: np.ndarray  # increasing values seen in training
    log_tail: np.ndarray  # log P(X >= knot), decreasing, log(1/(n+1)) at worst
    spread: float  # scale for extrapolating beyond the last knot
    tail_start: float = np.inf  # above this value the tail is exponential (peaks over threshold)
    tail_log_p: float = 0.0  # log P(X >= tail_start)
    tail_scale: float = 1.0  # mean excess over tail_start: one nat of evidence per tail_scale
    interpolate: bool = False  # linear between knots: continuous, so near-equal inputs stay in order

    @classmethod
    def fit(cls, values: np.ndarray, tail_from: float | None = None, *, interpolate: bool = False) -> TailTable:
        """Table for the upper tail of ``values`` (apply to ``-values`` for the lower tail).

        With ``tail_from`` (say 0.95), values above that training quantile get the evidence of an
        exponential tail fitted to the excesses (peaks over threshold) instead of their rank, so
        a value five tail-scales out counts more than one just past the edge: distance matters,
        as it does to an analyst, and not only order.
        """
        x = np.sort(np.asarray(values, dtype=np.float64))
        n = x.size
        knots = np.unique(np.quantile(x, _LEVELS, method="inverted_cdf"))
        at_or_above = n - np.searchsorted(x, knots, side="left")
        log_tail = np.log((at_or_above + 1.0) / (n + 1.0))
        q50, q99 = np.quantile(x, [0.5, 0.99])
        spread = float(q99 - q50) if q99 > q50 else float(max(x[-1] - x[0], 1.0))
        if tail_from is not None:
            u = float(np.quantile(x, tail_from, method="inverted_cdf"))
            excess = x[x > u] - u
            # A tail needs room: a binary or few-valued feature keeps its exact table.
            if excess.size >= 20 and np.unique(x[x > u]).size >= 10:
                at = n - np.searchsorted(x, u, side="right")
                return cls(knots, log_tail, spread, u, float(np.log((at + 1.0) / (n + 1.0))), float(excess.mean()),
                           interpolate)
        return cls(knots, log_tail, spread, interpolate=interpolate)

    def neg_log_tail(self, x: np.ndarray) -> np.ndarray:
        """-log P(X >= x) under the training distribution (0 below the smallest training value)."""
        x = np.asarray(x, dtype=np.float64)
        if np.isfinite(self.tail_start):
            out = self._empirical(x)
            far = x > self.tail_start
            out[far] = -self.tail_log_p + (x[far] - self.tail_start) / self.tail_scale
            return out
        return self._empirical(x)

    def _empirical(self, x: np.ndarray) -> np.ndarray:
        k, lt = self.knots, self.log_tail
        if self.interpolate:
            out = np.interp(x, k, -lt)
            beyond = x > k[-1]
            out[beyond] = -lt[-1] + (x[beyond] - k[-1]) / self.spread
            return out
        # Share at or above x = share at or above the first knot >= x (exact at knots, steps between).
        idx = np.searchsorted(k, x, side="left")
        inside = idx < k.size
        out = np.empty_like(x)
        out[inside] = -lt[idx[inside]]
        beyond = ~inside
        out[beyond] = -lt[-1] + np.log(2.0) + (x[beyond] - k[-1]) / self.spread  # past every training row
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Plain arrays for a bundle (``prefix`` keeps several tables apart)."""
        return {f"{prefix}knots": self.knots, f"{prefix}log_tail": self.log_tail,
                f"{prefix}tail": np.array([self.spread, self.tail_start, self.tail_log_p, self.tail_scale,
                                           float(self.interpolate)])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> TailTable:
        spread, start, log_p, scale, interpolate = (float(v) for v in arrays[f"{prefix}tail"])
        return cls(arrays[f"{prefix}knots"], arrays[f"{prefix}log_tail"], spread, start, log_p, scale, bool(interpolate))


@dataclass(frozen=True)
class RareTable:
    """For a feature without a direction (hour of day): how rare its value's neighbourhood is.

    A histogram of training values; the evidence of a value is -log of the share of training rows
    that fall in bins at most as populated as its own (a tail probability of rarity, HBOS-style).
    """

    edges: np.ndarray
    neg_log_tail: np.ndarray  # per bin (plus an outside-range bin at the end)

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = 24) -> RareTable:
        x = np.asarray(values, dtype=np.float64)
        lo, hi = float(x.min()), float(x.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        counts = np.histogram(x, edges)[0].astype(np.float64)
        order = np.argsort(counts, kind="stable")
        cum = np.empty(bins)
        cum[order] = np.cumsum(counts[order])
        # Bins of equal count share the tail of the whole tie.
        for c in np.unique(counts):
            same = counts == c
            cum[same] = cum[same].max()
        tail = -np.log((cum + 1.0) / (x.size + 1.0))
        outside = -np.log(1.0 / (x.size + 1.0))
        return cls(edges, np.r_[tail, outside])

    def score(self, x: np.ndarray) -> np.ndarray:
        """-log of the share of training rows in bins no more populated than x's."""
        x = np.asarray(x, dtype=np.float64)
        idx = np.searchsorted(self.edges, x, side="right") - 1
        idx[x == self.edges[-1]] = self.edges.size - 2
        idx[(idx < 0) | (idx > self.edges.size - 2)] = self.edges.size - 1
        return self.neg_log_tail[idx]
