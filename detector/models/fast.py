"""One-row scoring straight from a fitted pipeline's arrays, for the live detector.

scikit-learn validates input, sets thread limits and (for forests) dispatches per tree
on every call: 1-5 ms for a single row, whatever the model. The live detector scores one
row at a time, so each kind's score is recomputed here with numpy from the fitted
attributes (scaler mean and scale, centroids, MLP weights, support vectors, and the
isolation trees packed into arrays and walked all at once). ``tests/models/test_fast.py``
checks every kind against scikit-learn's own scores. Nothing here is saved: the scorer
is rebuilt from the pipeline when a model is loaded.

>>> import numpy as np
>>> from detector.models import kinds
>>> X = np.random.default_rng(0).normal(size=(300, 4))
>>> pipeline = kinds.build("kmeans", {"n_clusters": 3}, seed=0)
>>> kinds.fit(pipeline, "kmeans", X, lambda done, total: None)
>>> score = row_scorer(pipeline, "kmeans")
>>> bool(np.isclose(score(X[0]), kinds.raw_scores(pipeline, "kmeans", X[:1])[0]))
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda a: np.maximum(a, 0.0), "tanh": np.tanh, "identity": lambda a: a,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
}


def row_scorer(pipeline: Any, kind: str) -> Callable[[Sequence[float]], float]:
    """A function scoring one feature row as ``kinds.raw_scores`` would."""
    scaler, model = pipeline.named_steps["scale"], pipeline.named_steps["model"]
    mean = np.asarray(scaler.mean_, dtype=float)
    scale = np.asarray(scaler.scale_, dtype=float)

    def scaled(row: Sequence[float]) -> np.ndarray:
        return (np.asarray(row, dtype=float) - mean) / scale

    if kind == "kmeans":
        centres = np.asarray(model.cluster_centers_, dtype=float)
        return lambda row: float(np.sqrt(((centres - scaled(row)) ** 2).sum(axis=1).min()))
    if kind == "autoencoder":
        weights = [np.asarray(w, dtype=float) for w in model.coefs_]
        biases = [np.asarray(b, dtype=float) for b in model.intercepts_]
        hidden = _ACTIVATIONS[model.activation]
        output = _ACTIVATIONS[model.out_activation_]

        def reconstruction_error(row: Sequence[float]) -> float:
            z = scaled(row)
            a = z
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                a = a @ w + b
                a = output(a) if i == len(weights) - 1 else hidden(a)
            return float(((a - z) ** 2).mean())

        return reconstruction_error
    if kind == "one_class_svm":
        if model.kernel != "rbf":
            return lambda row: float(-model.score_samples(scaled(row)[None, :])[0])
        vectors = np.asarray(model.support_vectors_, dtype=float)
        dual = np.asarray(model.dual_coef_, dtype=float)[0]
        gamma, intercept, offset = float(model._gamma), float(model.intercept_[0]), \
            float(model.offset_[0])

        def svm(row: Sequence[float]) -> float:
            kernel = np.exp(-gamma * ((vectors - scaled(row)) ** 2).sum(axis=1))
            return -float(dual @ kernel + intercept + offset)

        return svm
    if kind == "isolation_forest":
        return _forest(model, scaled)
    raise ValueError(f"no fast scorer for {kind!r}")


def _forest(model: Any, scaled: Callable[[Sequence[float]], np.ndarray]
            ) -> Callable[[Sequence[float]], float]:
    from sklearn.ensemble._iforest import _average_path_length

    trees = [e.tree_ for e in model.estimators_]
    width = max(t.node_count for t in trees)
    n = len(trees)
    left = np.zeros((n, width), dtype=np.intp)
    right = np.zeros((n, width), dtype=np.intp)
    feature = np.zeros((n, width), dtype=np.intp)
    threshold = np.full((n, width), np.inf)
    depth = np.zeros((n, width))
    levels = 0
    for i, (tree, features) in enumerate(zip(trees, model.estimators_features_, strict=True)):
        count = tree.node_count
        nodes = np.arange(count)
        leaf = tree.children_left == -1
        # a leaf points to itself, so walking past it changes nothing
        left[i, :count] = np.where(leaf, nodes, tree.children_left)
        right[i, :count] = np.where(leaf, nodes, tree.children_right)
        feature[i, :count] = np.asarray(features)[np.where(leaf, 0, tree.feature)]
        threshold[i, :count] = np.where(leaf, np.inf, tree.threshold)
        depth[i, :count] = (model._decision_path_lengths[i] + model._average_path_length_per_tree[i]
                            - 1.0)
        levels = max(levels, int(tree.max_depth))
    rows = np.arange(n)
    denominator = n * float(_average_path_length([model._max_samples])[0])

    def isolation(row: Sequence[float]) -> float:
        # scikit-learn scores float32 inputs: round the same way before comparing
        z = scaled(row).astype(np.float32).astype(float)
        node = np.zeros(n, dtype=np.intp)
        for _ in range(levels):
            go_left = z[feature[rows, node]] <= threshold[rows, node]
            node = np.where(go_left, left[rows, node], right[rows, node])
        total = float(depth[rows, node].sum())
        return 2.0 ** (-total / denominator) if denominator else 1.0

    return isolation
