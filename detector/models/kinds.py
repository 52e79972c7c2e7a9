"""The four model kinds: how each is built from parameters and how it scores rows.

Every kind is a scikit-learn pipeline (a ``StandardScaler`` in front, so windows of
large and small values weigh alike) and a raw score where higher is more anomalous:

- ``isolation_forest``: minus ``score_samples`` (short isolation paths score high).
- ``one_class_svm``: minus ``score_samples`` (outside the learned support scores high).
  Kernel SVMs are quadratic in rows, so at most ``max_rows`` training rows (evenly spaced).
- ``kmeans``: distance to the nearest centroid.
- ``autoencoder``: ``MLPRegressor`` trained to reproduce its input through a narrow
  hidden layer; the score is the mean squared reconstruction error of the row.

>>> sorted(KINDS)
['autoencoder', 'isolation_forest', 'kmeans', 'one_class_svm']
>>> build("kmeans", {"n_clusters": 3}, seed=1).steps[-1][1].n_clusters
3
>>> build("kmeans", {"clusters": 3}, seed=1)
Traceback (most recent call last):
...
ValueError: kmeans has no parameter 'clusters' (known: max_iter, n_clusters, n_init)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Defaults per kind; --params KEY=VALUE overrides them (types follow the default).
KINDS: dict[str, dict[str, Any]] = {
    "isolation_forest": {"n_estimators": 200, "max_samples": 256, "contamination": "auto"},
    "one_class_svm": {"nu": 0.05, "gamma": "scale", "max_rows": 5000},
    "kmeans": {"n_clusters": 8, "n_init": 4, "max_iter": 300},
    "autoencoder": {"bottleneck": 0.25, "hidden": 1.0, "max_iter": 40, "alpha": 1e-4},
}


def check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The kind's defaults updated with ``params``; an unknown kind or key is a ValueError."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    defaults = KINDS[kind]
    for key in params:
        if key not in defaults:
            raise ValueError(f"{kind} has no parameter {key!r} "
                             f"(known: {', '.join(sorted(defaults))})")
    return {**defaults, **params}


def build(kind: str, params: dict[str, Any], seed: int, n_features: int = 8) -> Any:
    """An unfitted pipeline of ``kind``; ``n_features`` sizes the autoencoder's layers."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    p = check_params(kind, params)
    if kind == "isolation_forest":
        model = IsolationForest(n_estimators=int(p["n_estimators"]),
                                max_samples=p["max_samples"], contamination=p["contamination"],
                                random_state=seed)
    elif kind == "one_class_svm":
        model = OneClassSVM(nu=float(p["nu"]), gamma=p["gamma"])
    elif kind == "kmeans":
        model = KMeans(n_clusters=int(p["n_clusters"]), n_init=int(p["n_init"]),
                       max_iter=int(p["max_iter"]), random_state=seed)
    else:
        hidden = max(2, round(float(p["hidden"]) * n_features))
        bottleneck = max(1, round(float(p["bottleneck"]) * n_features))
        model = MLPRegressor(hidden_layer_sizes=(hidden, bottleneck, hidden),
                             alpha=float(p["alpha"]), max_iter=int(p["max_iter"]),
                             early_stopping=False, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def training_rows(kind: str, params: dict[str, Any], rows: int) -> np.ndarray:
    """Indices of the rows a kind fits on (all but for the one-class SVM's cap)."""
    cap = int(check_params(kind, params).get("max_rows", 0) or 0)
    if cap and rows > cap:
        return np.linspace(0, rows - 1, cap).round().astype(int)
    return np.arange(rows)


def fit(pipeline: Any, kind: str, X: np.ndarray, on_step: Callable[[int, int], None]) -> None:
    """Fit ``pipeline`` on ``X``, calling ``on_step(done, total)`` as it goes (progress)."""
    scaler, model = pipeline.named_steps["scale"], pipeline.named_steps["model"]
    Z = scaler.fit_transform(X)
    if kind == "autoencoder":
        # One epoch per partial_fit call, so the progress bar moves while it learns.
        total = model.max_iter
        for epoch in range(total):
            model.partial_fit(Z, Z)
            on_step(epoch + 1, total)
        return
    if kind == "isolation_forest":
        total = model.n_estimators
        step = max(1, total // 10)
        model.set_params(warm_start=True)
        for done in range(step, total + step, step):
            model.set_params(n_estimators=min(done, total))
            model.fit(Z)
            on_step(min(done, total), total)
        return
    model.fit(Z)
    on_step(1, 1)


def raw_scores(pipeline: Any, kind: str, X: np.ndarray) -> np.ndarray:
    """Anomaly score of each row of ``X`` (higher is more anomalous)."""
    Z = pipeline.named_steps["scale"].transform(np.asarray(X, dtype=float))
    model = pipeline.named_steps["model"]
    if kind in ("isolation_forest", "one_class_svm"):
        return -model.score_samples(Z)
    if kind == "kmeans":
        return model.transform(Z).min(axis=1)
    return ((model.predict(Z) - Z) ** 2).mean(axis=1)
