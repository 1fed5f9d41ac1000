"""A fitted isolation forest as flat arrays, scored exactly like scikit-learn but without it.

This is the serving path: it imports numpy and, when built, the C kernel ``_forest``; never
scikit-learn. ``CompiledForest.from_sklearn`` copies a fitted ``sklearn.ensemble.IsolationForest``
into arrays; ``to_arrays`` / ``from_arrays`` move them through a model bundle.

Two rules make our scores equal to ``-IsolationForest.score_samples(X)``:

* inputs are rounded to float32 before comparing with the float64 thresholds (sklearn does so);
* a leaf's value is its depth plus c(n), the expected path length of the n training rows that
  reached it; score = 2 ** -(sum over trees / (n_trees * c(max_samples))).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:
    from fraudstream.model.detectors import _forest as _c_kernel
except ImportError:  # the extension is optional: the numpy backend gives the same answers
    _c_kernel = None

BACKENDS = ("c", "numpy")

# Rows scored together by the numpy backend: bounds its (rows x trees) index matrix.
_NUMPY_CHUNK_ROWS = 256  # measured: larger chunks spill out of cache and run slower


def c_available() -> bool:
    """True when the compiled C kernel was built and imports."""
    return _c_kernel is not None


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length c(n) of an unsuccessful search among n points, as in sklearn.

    >>> average_path_length(np.array([1, 2, 256])).round(4).tolist()
    [0.0, 1.0, 10.2448]
    """
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros(n.shape)
    out[n == 2] = 1.0
    big = n > 2
    # Same expression and order as sklearn's _average_path_length, so the floats match.
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class CompiledForest:
    """Flat arrays of a fitted isolation forest, scored without scikit-learn.

    Build one with :meth:`from_sklearn` or :meth:`from_arrays`. Scores are in (0, 1]; higher
    means easier to isolate, i.e. more suspicious.
    """

    n_features: int
    n_trees: int
    max_samples: int
    backend: str

    def __init__(self, arrays: dict[str, np.ndarray], backend: str | None = None) -> None:
        """Use :meth:`from_arrays` or :meth:`from_sklearn`; ``arrays`` must already be valid."""
        self._arrays = arrays
        self.n_features = int(arrays["n_features"])
        self.max_samples = int(arrays["max_samples"])
        self.n_trees = int(arrays["roots"].shape[0])
        self._denominator = self.n_trees * float(average_path_length(np.array([self.max_samples]))[0])
        self._prepare_numpy()
        if backend is None:
            backend = "c" if c_available() else "numpy"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "c":
            if _c_kernel is None:
                raise ValueError(
                    "the C scorer is not built; reinstall fraudstream with a C compiler or use backend='numpy'"
                )
            self._kernel = _c_kernel.Kernel(
                arrays["feature"],
                arrays["threshold"],
                arrays["left"],
                arrays["right"],
                arrays["value"],
                arrays["roots"],
                self.n_features,
                self._denominator,
            )
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"CompiledForest(n_trees={self.n_trees}, n_features={self.n_features}, "
            f"max_samples={self.max_samples}, backend={self.backend!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The C kernel cannot be pickled; rebuild from the arrays (e.g. when Spark ships a model).
        return (CompiledForest.from_arrays, (self.to_arrays(),))

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def from_sklearn(cls, estimator: Any, *, backend: str | None = None) -> CompiledForest:
        """Compile a fitted ``sklearn.ensemble.IsolationForest`` (duck-typed, sklearn not imported)."""
        try:
            trees = [tree.tree_ for tree in estimator.estimators_]
            features_per_tree = list(estimator.estimators_features_)
            max_samples = int(estimator.max_samples_)
            n_features = int(estimator.n_features_in_)
        except AttributeError as exc:
            raise ValueError(f"expected a fitted IsolationForest: {exc}") from None
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right", "value")}
        roots = []
        offset = 0
        for tree, columns in zip(trees, features_per_tree, strict=True):
            left = np.asarray(tree.children_left, dtype=np.int64)
            right = np.asarray(tree.children_right, dtype=np.int64)
            is_leaf = left == -1
            local_feature = np.asarray(tree.feature, dtype=np.int64)
            # Each tree saw only its own columns; map its feature ids back to global columns.
            feature = np.where(is_leaf, -1, np.asarray(columns, dtype=np.int64)[np.where(is_leaf, 0, local_feature)])
            # sklearn: decision-path length (root = 1) + c(n_node_samples) - 1.0, same float ops.
            value = (_node_depths(left, right) + average_path_length(tree.n_node_samples)) - 1.0
            parts["feature"].append(feature)
            parts["threshold"].append(np.where(is_leaf, 0.0, tree.threshold))
            parts["left"].append(np.where(is_leaf, -1, left + offset))
            parts["right"].append(np.where(is_leaf, -1, right + offset))
            parts["value"].append(value)
            roots.append(offset)
            offset += left.shape[0]
        arrays: dict[str, np.ndarray] = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["roots"] = np.asarray(roots)
        arrays["n_features"] = np.asarray(n_features)
        arrays["max_samples"] = np.asarray(max_samples)
        return cls.from_arrays(arrays, backend=backend)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, backend: str | None = None) -> CompiledForest:
        """Rebuild a forest from :meth:`to_arrays` output; ValueError names what is wrong.

        Validation also guarantees that every walk ends: children come after their parent and
        stay inside their own tree.
        """
        return cls(_validate(arrays), backend)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define this forest (copies), ready for ``np.savez``."""
        return {name: array.copy() for name, array in self._arrays.items()}

    # ---- scoring --------------------------------------------------------------------------

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``X`` (n, n_features); equal to ``-score_samples(X)`` of sklearn."""
        X = self._check_matrix(X)
        if self.backend == "c":
            out = np.empty(X.shape[0])
            self._kernel.score_many(X, out)
            return out
        if np.isnan(X).any():
            raise ValueError("X contains NaN")
        return self._numpy_scores(X)

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row given as a list, tuple or 1-d array; the fast path for streaming."""
        if self.backend == "c":
            return self._kernel.score_one(x)  # type: ignore[no-any-return]
        row = self._check_row(x)
        return float(self._numpy_scores(row[np.newaxis, :])[0])

    def feature_contributions(self, x: Sequence[float]) -> np.ndarray:
        """How much each feature helped isolate ``x``: (n_features,) float64 that sum to <= 1.

        Every split on x's path in a tree credits its feature with 1 / (the leaf's path length);
        credits are summed over trees and divided by the number of trees. A feature that isolates
        x after few splits gets a large share. Plain numpy: used only when explaining an alert.
        """
        row = _to_float32(self._check_row(x))
        at = self._roots
        features_on_path = []
        for _ in range(self._max_depth):
            features_on_path.append(self._feature.take(at))  # -1 once the walk sits on a leaf
            at = self._step(row.take(self._work_feature.take(at)), at)
        credit = np.zeros(self.n_features)
        leaf_value = self._arrays["value"][at]
        if features_on_path:
            path = np.stack(features_on_path)  # (depth, n_trees)
            weight = np.broadcast_to(1.0 / np.where(leaf_value > 0, leaf_value, 1.0), path.shape)
            np.add.at(credit, path[path >= 0], weight[path >= 0])
        return credit / self.n_trees

    # ---- internals ----------------------------------------------------------------------------

    def _prepare_numpy(self) -> None:
        """Leaves become self-loops (threshold +inf) so every row walks a fixed number of levels."""
        a = self._arrays
        self._feature = a["feature"]
        leaf = a["feature"] < 0
        index = np.arange(leaf.shape[0], dtype=np.intp)
        self._roots = a["roots"].astype(np.intp)
        self._work_feature = np.where(leaf, 0, a["feature"]).astype(np.intp)
        self._work_threshold = np.where(leaf, np.inf, a["threshold"])
        # children[2 * node] is the left child, children[2 * node + 1] the right one.
        left = np.where(leaf, index, a["left"])
        right = np.where(leaf, index, a["right"])
        self._children = np.stack([left, right], axis=1).ravel().astype(np.intp)
        self._max_depth = _max_depth(a["left"], a["right"], a["roots"])

    def _step(self, values: np.ndarray, at: np.ndarray) -> np.ndarray:
        # float32 values against float64 thresholds: numpy widens the float32 exactly, like sklearn.
        # NaN was rejected, so "not <=" is ">".
        return self._children.take(2 * at + (values > self._work_threshold.take(at)))

    def _numpy_scores(self, X: np.ndarray) -> np.ndarray:
        # All trees of a chunk of rows advance one level per pass over a (rows, trees) matrix.
        X32 = _to_float32(X)
        value = self._arrays["value"]
        scores = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _NUMPY_CHUNK_ROWS):
            flat = X32[start : start + _NUMPY_CHUNK_ROWS].ravel()
            n_rows = flat.shape[0] // self.n_features
            row_base = (np.arange(n_rows) * self.n_features)[:, np.newaxis]
            at = np.broadcast_to(self._roots, (n_rows, self.n_trees))
            for _ in range(self._max_depth):
                at = self._step(flat.take(row_base + self._work_feature.take(at)), at)
            scores[start : start + n_rows] = self._to_score(value.take(at).sum(axis=1))
        return scores

    def _to_score(self, depth_sum: np.ndarray) -> np.ndarray:
        if self._denominator == 0:  # max_samples <= 1: sklearn's ratio defaults to 1
            return np.full(depth_sum.shape, 0.5)
        return np.power(2.0, -(depth_sum / self._denominator))

    def _check_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        return X

    def _check_row(self, x: Sequence[float]) -> np.ndarray:
        row = np.asarray(x, dtype=np.float64)
        if row.shape != (self.n_features,):
            raise ValueError(f"expected {self.n_features} features, got shape {row.shape}")
        if np.isnan(row).any():
            raise ValueError("x contains NaN")
        return row


def _to_float32(values: np.ndarray) -> np.ndarray:
    # Beyond float32's range values become +-inf, as in sklearn; the C kernel does it silently too.
    with np.errstate(over="ignore"):
        return values.astype(np.float32)


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of each node with the root at 1, like sklearn's Tree.compute_node_depths."""
    depths = np.zeros(left.shape[0], dtype=np.int64)
    level = np.array([0])
    depth = 1
    while level.size:
        depths[level] = depth
        split = level[left[level] >= 0]
        level = np.concatenate([left[split], right[split]])
        depth += 1
    return depths


def _max_depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """Most splits on any root-to-leaf path, over all trees (validated arrays only)."""
    level = np.asarray(roots, dtype=np.int64)
    depth = 0
    while True:
        split = level[left[level] >= 0]
        if split.size == 0:
            return depth
        # unique() keeps a hand-made forest with shared children from growing the frontier.
        level = np.unique(np.concatenate([left[split], right[split]]))
        depth += 1


_INT_ARRAYS = ("feature", "left", "right", "roots")
_FLOAT_ARRAYS = ("threshold", "value")
_SCALARS = ("n_features", "max_samples")


def _validate(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check names, dtypes, shapes, finiteness and tree structure; return normalised copies."""
    missing = [k for k in (*_INT_ARRAYS, *_FLOAT_ARRAYS, *_SCALARS) if k not in arrays]
    if missing:
        raise ValueError(f"forest arrays are missing {missing}")
    out: dict[str, np.ndarray] = {}
    for name in _SCALARS:
        value = np.asarray(arrays[name])
        if value.shape != () or value.dtype.kind not in "iu" or int(value) < 1:
            raise ValueError(f"{name} must be a positive integer scalar, got {value!r}")
        out[name] = np.asarray(int(value), dtype=np.int64)
    for name in (*_INT_ARRAYS, *_FLOAT_ARRAYS):
        array = np.asarray(arrays[name])
        if array.ndim != 1 or array.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty 1-d array, got shape {array.shape}")
        kinds = "iu" if name in _INT_ARRAYS else "fiu"
        if array.dtype.kind not in kinds:
            raise ValueError(f"{name} has dtype {array.dtype}, expected {'integers' if kinds == 'iu' else 'floats'}")
        if name in _FLOAT_ARRAYS:
            array = array.astype(np.float64)
            if not np.isfinite(array).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        elif array.size and (array.min() < -1 or array.max() >= 2**31 - 1):
            raise ValueError(f"{name} has values outside int32 range")
        else:
            array = array.astype(np.int32)
        out[name] = array
    n_nodes = out["feature"].shape[0]
    for name in ("threshold", "left", "right", "value"):
        if out[name].shape[0] != n_nodes:
            raise ValueError(f"{name} has {out[name].shape[0]} nodes, feature has {n_nodes}")
    _validate_structure(out, n_nodes)
    return out


def _validate_structure(a: dict[str, np.ndarray], n_nodes: int) -> None:
    roots = a["roots"].astype(np.int64)
    if roots[0] != 0 or (np.diff(roots) <= 0).any() or roots[-1] >= n_nodes:
        raise ValueError("roots must start at 0, increase strictly and stay below the node count")
    node = np.arange(n_nodes)
    tree_end = np.append(roots[1:], n_nodes)[np.searchsorted(roots, node, side="right") - 1]
    feature, left, right = a["feature"], a["left"], a["right"]
    leaf = feature == -1
    if ((left[leaf] != -1) | (right[leaf] != -1)).any():
        raise ValueError("leaves (feature == -1) must have left == right == -1")
    split = ~leaf
    if ((feature[split] < 0) | (feature[split] >= int(a["n_features"]))).any():
        raise ValueError(f"split features must be in [0, {int(a['n_features'])})")
    for name, child in (("left", left), ("right", right)):
        c = child[split]
        if ((c <= node[split]) | (c >= tree_end[split])).any():
            raise ValueError(f"{name} children must come after their parent inside the same tree")
    if (a["value"] < 0).any():
        raise ValueError("path lengths (value) must be >= 0")
