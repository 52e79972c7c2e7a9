"""Half-space trees with one random structure shared by every stream.

Once features are in [0, 1] the trees of River's ``HalfSpaceTrees`` do not depend on the
data: they are drawn from the seed alone. So the structure (split feature and threshold of
every node) is built once per (n_trees, height, n_features, seed) and shared; a stream keeps
only its two mass counters per node in compact arrays: 10 trees of height 8 take
2 x 5,110 bytes instead of River's ~1.15 MB per instance. For the same seed and parameters
the scores are exactly River's (``tests/engine/test_hst_equivalence.py``).

>>> trees = CompactHalfSpaceTrees(n_trees=5, height=3, window_size=3, n_features=1, seed=42)
>>> X = [0.5, 0.45, 0.43, 0.44, 0.445, 0.45, 0.0]
>>> for x in X[:3]:
...     trees.learn_one([x])
>>> for x in X:
...     trees.learn_one([x])
...     print(f"{x:.3f} {trees.score_one([x]):.3f}")
0.500 0.107
0.450 0.071
0.430 0.107
0.440 0.107
0.445 0.107
0.450 0.071
0.000 0.853
"""

from __future__ import annotations

import functools
import random
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.engine.features import FeatureWindow
from detector.engine.protocol import Base

PADDING = 0.15  # River's: split points are drawn away from the edges of a node's box


class SharedForest:
    """The random structure of ``n_trees`` complete trees, in heap order, all flat.

    Node ``i`` of tree ``t`` is at flat index ``t * nodes_per_tree + i``; the children of
    tree-local node ``i`` are ``2i + 1`` (value < threshold) and ``2i + 2``.
    """

    def __init__(self, n_trees: int, height: int, n_features: int, seed: int | None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.n_features = n_features
        self.nodes_per_tree = 2 ** (height + 1) - 1
        size = n_trees * self.nodes_per_tree
        self.feature = [0] * size
        self.threshold = [0.0] * size
        self.bases = tuple(t * self.nodes_per_tree for t in range(n_trees))
        rng = random.Random(seed)
        for base in self.bases:
            limits = [(0.0, 1.0)] * n_features
            self._grow(base, 0, height, limits, rng)

    def _grow(self, base: int, node: int, height: int, limits: list[tuple[float, float]],
              rng: random.Random) -> None:
        # Same random draws in the same order as river.tree.padded.make_padded_tree.
        if height == 0:
            return
        on = rng.choices(population=range(self.n_features),
                         weights=[high - low for low, high in limits])[0]
        low, high = limits[on]
        at = rng.uniform(low + PADDING * (high - low), high - PADDING * (high - low))
        self.feature[base + node] = on
        self.threshold[base + node] = at
        limits[on] = (low, at)
        self._grow(base, 2 * node + 1, height - 1, limits, rng)
        limits[on] = (at, high)
        self._grow(base, 2 * node + 2, height - 1, limits, rng)
        limits[on] = (low, high)

    def path(self, x: Sequence[float]) -> list[int]:
        """Flat indices of the root-to-leaf path of ``x`` in every tree, tree after tree."""
        feature = self.feature
        threshold = self.threshold
        levels = range(self.height)
        path: list[int] = []
        append = path.append
        for base in self.bases:
            i = base
            append(i)
            for _ in levels:
                # tree-local child 2k+1 of local node k = i - base, as a flat index
                i = 2 * i - base + (1 if x[feature[i]] < threshold[i] else 2)
                append(i)
        return path


@functools.lru_cache(maxsize=64)
def shared_forest(n_trees: int, height: int, n_features: int, seed: int | None) -> SharedForest:
    """The one structure for these parameters, built on first use and then shared."""
    return SharedForest(n_trees, height, n_features, seed)


class CompactHalfSpaceTrees(Base):
    """River's HalfSpaceTrees on feature vectors in [0, 1], with a shared structure.

    Per instance: two counters per node (``uint8`` when ``window_size`` < 256, else
    ``uint16``), a reading counter and whether the first window is still filling.
    """

    __slots__ = ("n_trees", "height", "window_size", "n_features", "seed", "forest",
                 "l_mass", "r_mass", "counter", "first_window", "_limit", "_max_score",
                 "_typecode")

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250,
                 n_features: int = 1, seed: int | None = None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.n_features = n_features
        self.seed = seed
        self.forest = shared_forest(n_trees, height, n_features, seed)
        self._typecode = "B" if window_size < 256 else "H"
        size = n_trees * self.forest.nodes_per_tree
        self.l_mass = array(self._typecode, bytes(size * array(self._typecode).itemsize))
        self.r_mass = array(self._typecode, self.l_mass)
        self.counter = 0
        self.first_window = True
        self._limit = 0.1 * window_size  # River's size limit, from the original paper
        self._max_score = n_trees * window_size * (2 ** (height + 1) - 1)

    @property
    def ready(self) -> bool:
        return not self.first_window

    @property
    def nbytes(self) -> int:
        """Bytes of per-instance counters (the shared structure is not counted)."""
        return 2 * len(self.l_mass) * self.l_mass.itemsize

    def score_one(self, x: Sequence[float]) -> float:
        return self.score_path(self.forest.path(x))

    def learn_one(self, x: Sequence[float]) -> None:
        self.learn_path(self.forest.path(x))

    def score_path(self, path: list[int]) -> float:
        if self.first_window:
            return 0.0
        r_mass = self.r_mass
        limit = self._limit
        depth_levels = self.height + 1
        total = 0
        for start in range(0, len(path), depth_levels):
            # River's walk: add r_mass * 2**depth, stop after the first node below the limit.
            for depth, node in enumerate(path[start:start + depth_levels]):
                mass = r_mass[node]
                total += mass << depth
                if mass < limit:
                    break
        return 1.0 - total / self._max_score

    def learn_path(self, path: list[int]) -> None:
        l_mass = self.l_mass
        for node in path:
            l_mass[node] += 1
        self.counter += 1
        if self.counter == self.window_size:
            self.r_mass = l_mass
            self.l_mass = array(self._typecode, bytes(len(l_mass) * l_mass.itemsize))
            self.first_window = False
            self.counter = 0

    def state(self) -> dict[str, Any]:
        return {"l_mass": np.frombuffer(self.l_mass, dtype=self._dtype()).copy(),
                "r_mass": np.frombuffer(self.r_mass, dtype=self._dtype()).copy(),
                "counter": self.counter, "first_window": self.first_window}

    def load_state(self, state: dict[str, Any]) -> None:
        self.l_mass = array(self._typecode, np.asarray(state["l_mass"], self._dtype()).tobytes())
        self.r_mass = array(self._typecode, np.asarray(state["r_mass"], self._dtype()).tobytes())
        self.counter = int(state["counter"])
        self.first_window = bool(state["first_window"])

    def _dtype(self) -> type:
        return np.uint8 if self._typecode == "B" else np.uint16


class HalfSpaceTreesDetector(Base):
    """Per-stream detector: a feature window in front of compact half-space trees.

    >>> detector = HalfSpaceTreesDetector(n_trees=5, height=4, window_size=20, seed=1)
    >>> for i in range(60):
    ...     detector.learn_one(10.0 + (i % 5) * 0.1)
    >>> detector.score_one(10.2) < detector.score_one(30.0)
    True
    """

    __slots__ = ("n_trees", "height", "window_size", "features", "rolling", "scaler",
                 "value_range", "standard_halflife", "standard_width", "seed", "window",
                 "trees", "_cached")

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250,
                 features: tuple[str, ...] = ("value", "diff", "std"), rolling: int = 8,
                 scaler: str = "standard", value_range: tuple[float, float] | None = None,
                 standard_halflife: float = 1000.0, standard_width: float = 4.0,
                 seed: int | None = None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.features = tuple(features)
        self.rolling = rolling
        self.scaler = scaler
        self.value_range = value_range
        self.standard_halflife = standard_halflife
        self.standard_width = standard_width
        self.seed = seed
        self.window = FeatureWindow(self.features, rolling, scaler, value_range,
                                    standard_halflife, standard_width)
        self.trees = CompactHalfSpaceTrees(n_trees, height, window_size, len(self.features), seed)
        # The path of the value last scored: learn_one of the same value reuses it.
        self._cached: tuple[float, list[int]] | None = None

    @property
    def ready(self) -> bool:
        return self.trees.ready

    def _path(self, x: float) -> list[int]:
        cached = self._cached
        if cached is not None and cached[0] == x:
            return cached[1]
        path = self.trees.forest.path(self.window.features_of(x))
        self._cached = (x, path)
        return path

    def score_one(self, x: float) -> float:
        return self.trees.score_path(self._path(x))

    def learn_one(self, x: float) -> None:
        self.trees.learn_path(self._path(x))
        self.window.learn(x)
        self._cached = None

    def state(self) -> dict[str, Any]:
        return {"window": self.window.state(), "trees": self.trees.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.window.load_state(state["window"])
        self.trees.load_state(state["trees"])
        self._cached = None


class RiverHalfSpaceTreesDetector(Base):
    """The same feature window in front of River's own ``HalfSpaceTrees`` (one per stream).

    Kept selectable as the reference implementation; it costs ~1 MB per stream.
    """

    __slots__ = ("n_trees", "height", "window_size", "features", "rolling", "scaler",
                 "value_range", "standard_halflife", "standard_width", "seed", "window",
                 "model")

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250,
                 features: tuple[str, ...] = ("value", "diff", "std"), rolling: int = 8,
                 scaler: str = "standard", value_range: tuple[float, float] | None = None,
                 standard_halflife: float = 1000.0, standard_width: float = 4.0,
                 seed: int | None = None) -> None:
        from river.anomaly import HalfSpaceTrees

        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.features = tuple(features)
        self.rolling = rolling
        self.scaler = scaler
        self.value_range = value_range
        self.standard_halflife = standard_halflife
        self.standard_width = standard_width
        self.seed = seed
        self.window = FeatureWindow(self.features, rolling, scaler, value_range,
                                    standard_halflife, standard_width)
        self.model = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size,
                                    seed=seed)

    @property
    def ready(self) -> bool:
        return not self.model._first_window

    def _x(self, value: float) -> dict[int, float]:
        return dict(enumerate(self.window.features_of(value)))

    def score_one(self, x: float) -> float:
        return float(self.model.score_one(self._x(x)))

    def learn_one(self, x: float) -> None:
        self.model.learn_one(self._x(x))
        self.window.learn(x)

    def state(self) -> dict[str, Any]:
        model = self.model
        masses = [[(node.l_mass, node.r_mass) for node in nodes] for nodes in model._tree_nodes]
        return {"window": self.window.state(), "built": bool(model.trees),
                "masses": np.asarray(masses, dtype=np.int64).reshape(-1, 2),
                "counter": model.counter, "first_window": model._first_window}

    def load_state(self, state: dict[str, Any]) -> None:
        from river.anomaly import HalfSpaceTrees

        self.window.load_state(state["window"])
        model = HalfSpaceTrees(n_trees=self.n_trees, height=self.height,
                               window_size=self.window_size, seed=self.seed)
        if state["built"]:
            model.learn_one(dict.fromkeys(range(len(self.features)), 0.5))  # builds the trees
            masses = iter(np.asarray(state["masses"]).reshape(-1, 2).tolist())
            for nodes in model._tree_nodes:
                for node in nodes:
                    node.l_mass, node.r_mass = next(masses)
            model.counter = int(state["counter"])
            model._first_window = bool(state["first_window"])
        self.model = model
