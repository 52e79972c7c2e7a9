"""Half-space trees with one random structure shared by every stream.

Once features are in [0, 1] the trees of River's ``HalfSpaceTrees`` do not depend on the
data: they are drawn from the seed alone. So the structure (split feature and threshold of
every node) is built once per (n_trees, height, n_features, seed), compiled to straight-line
code and shared. A stream keeps only the reference-window mass of each node (one byte) and
the leaf each reading of the current window reached in each tree (two bytes): 5 KB at the
defaults (8 trees of height 6, window 250), 10 KB at River's 10 trees of height 8, instead
of River's ~1.15 MB per instance. For the same seed and parameters the scores are exactly
River's (``tests/engine/test_hst_equivalence.py``).

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
# Up to this height the trees are compiled into nested comparisons (2**(height + 1)
# lines per tree); taller trees are walked node by node.
COMPILE_MAX_HEIGHT = 10


class SharedForest:
    """The random structure of ``n_trees`` complete trees, shared by every stream.

    Nodes are numbered in heap order, tree after tree: node ``i`` of tree ``t`` has flat
    index ``t * nodes_per_tree + i`` and children ``2i + 1`` (value < threshold) and
    ``2i + 2``. For walking, each tree is also kept as nested tuples
    ``(flat_index, feature, threshold, left, right)`` with leaves as their flat index:
    tuple unpacking is the cheapest step a Python loop can take.
    """

    def __init__(self, n_trees: int, height: int, n_features: int, seed: int | None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.n_features = n_features
        self.nodes_per_tree = 2 ** (height + 1) - 1
        size = n_trees * self.nodes_per_tree
        self.feature = [0] * size
        self.threshold = [0.0] * size
        rng = random.Random(seed)
        bases = [t * self.nodes_per_tree for t in range(n_trees)]
        for base in bases:
            self._grow(base, 0, height, [(0.0, 1.0)] * n_features, rng)
        self.bases = tuple(bases)
        self.roots = tuple(self._nested(base, 0, height) for base in bases)
        self.walk = self._compile_walk() if height <= COMPILE_MAX_HEIGHT else self._walk

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

    def _nested(self, base: int, node: int, height: int) -> Any:
        if height == 0:
            return base + node
        flat = base + node
        return (flat, self.feature[flat], self.threshold[flat],
                self._nested(base, 2 * node + 1, height - 1),
                self._nested(base, 2 * node + 2, height - 1))

    def _walk(self, x: Sequence[float], r_mass: Any, limit: float) -> tuple[int, list[int]]:
        """River's score sum over every tree, and the leaf ``x`` reaches in each tree.

        Scoring adds ``r_mass * 2**depth`` down the path and stops after the first node
        whose mass is below ``limit``; the walk itself always goes on to the leaf.
        """
        height = self.height
        total = 0
        leaves = []
        for node in self.roots:
            depth = 0
            while depth < height:
                flat, feature, threshold, left, right = node
                mass = r_mass[flat]
                total += mass << depth
                node = left if x[feature] < threshold else right
                depth += 1
                if mass < limit:
                    break
            else:
                total += r_mass[node] << height
                leaves.append(node)
                continue
            while depth < height:
                _, feature, threshold, left, right = node
                node = left if x[feature] < threshold else right
                depth += 1
            leaves.append(node)
        return total, leaves

    def _compile_walk(self) -> Any:
        """``_walk`` written out for these trees as straight-line code, compiled once.

        The trees never change once drawn, so finding a leaf becomes nested ``if``
        statements on local variables (no per-node tuple unpacking or loop counters).
        The score then follows the leaf's ancestors, whose heap indices are bit shifts
        of the leaf's: the ancestor at depth ``d`` of local node ``i`` is
        ``((i + 1) >> (height - d)) - 1``.
        """
        feature, threshold, height = self.feature, self.threshold, self.height
        names = [f"x{i}" for i in range(self.n_features)]
        lines = ["def walk(x, r, limit):",
                 f"    {', '.join(names)}{',' if len(names) == 1 else ''} = x",
                 "    total = 0"]

        def find_leaf(base: int, node: int, depth: int, pad: str, target: str) -> None:
            flat = base + node
            if depth == height:
                lines.append(f"{pad}{target} = {flat - base + 1}")
                return
            lines.append(f"{pad}if x{feature[flat]} < {threshold[flat]!r}:")
            find_leaf(base, 2 * node + 1, depth + 1, pad + " ", target)
            lines.append(f"{pad}else:")
            find_leaf(base, 2 * node + 2, depth + 1, pad + " ", target)

        for t, base in enumerate(self.bases):
            # c is the leaf's local heap index + 1: its bits spell the path from the root
            find_leaf(base, 0, 0, "    ", "c")
            lines.append(f"    l{t} = {base - 1} + c")
            pad = "    "
            for depth in range(height + 1):
                ancestor = f"(c >> {height - depth})" if depth < height else "c"
                lines.append(f"{pad}m = r[{base - 1} + {ancestor}]")
                lines.append(f"{pad}total += m << {depth}" if depth else f"{pad}total += m")
                if depth < height:
                    lines.append(f"{pad}if m >= limit:")
                    pad += " "
        lines.append(f"    return total, [{', '.join(f'l{t}' for t in range(self.n_trees))}]")
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), "<half-space trees>", "exec"), namespace)
        return namespace["walk"]

    def masses(self, leaves: Any, count: int) -> Any:
        """Mass of every node after the first ``count`` leaves of ``leaves`` were learned."""
        flat = np.bincount(np.frombuffer(leaves, dtype=_dtype(leaves.typecode))[: count * self.n_trees],
                           minlength=self.n_trees * self.nodes_per_tree)
        mass = flat.reshape(self.n_trees, self.nodes_per_tree)
        for depth in reversed(range(self.height)):
            first, last = 2 ** depth - 1, 2 ** (depth + 1) - 1
            mass[:, first:last] = (mass[:, 2 * first + 1:2 * last + 1:2]
                                   + mass[:, 2 * first + 2:2 * last + 2:2])
        return flat


def _dtype(typecode: str) -> Any:
    return {"B": np.uint8, "H": np.uint16, "I": np.uint32}[typecode]


@functools.lru_cache(maxsize=64)
def shared_forest(n_trees: int, height: int, n_features: int, seed: int | None) -> SharedForest:
    """The one structure for these parameters, built on first use and then shared."""
    return SharedForest(n_trees, height, n_features, seed)


class CompactHalfSpaceTrees(Base):
    """River's HalfSpaceTrees on feature vectors in [0, 1], with a shared structure.

    Per instance: the reference-window mass of every node (``uint8`` when
    ``window_size`` < 256, else ``uint16``) and the leaf each reading of the current
    window reached in each tree. River counts the current window's mass at every node
    on the way down; here the leaves are kept and the masses are summed up the trees once
    per window, which gives the same counts for a fraction of the per-reading work.
    """

    __slots__ = ("n_trees", "height", "window_size", "n_features", "seed", "forest",
                 "r_mass", "leaves", "counter", "first_window", "_limit", "_max_score",
                 "_mass_code")

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250,
                 n_features: int = 1, seed: int | None = None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.n_features = n_features
        self.seed = seed
        self.forest = shared_forest(n_trees, height, n_features, seed)
        size = n_trees * self.forest.nodes_per_tree
        self._mass_code = "B" if window_size < 256 else "H"
        self.r_mass = array(self._mass_code, bytes(size * array(self._mass_code).itemsize))
        leaf_code = "H" if size < 65536 else "I"
        self.leaves = array(leaf_code, bytes(window_size * n_trees * array(leaf_code).itemsize))
        self.counter = 0
        self.first_window = True
        self._limit = 0.1 * window_size  # River's size limit, from the original paper
        self._max_score = n_trees * window_size * (2 ** (height + 1) - 1)

    @property
    def ready(self) -> bool:
        return not self.first_window

    @property
    def nbytes(self) -> int:
        """Bytes of per-instance state (the shared structure is not counted)."""
        return (len(self.r_mass) * self.r_mass.itemsize
                + len(self.leaves) * self.leaves.itemsize)

    def walk(self, x: Sequence[float]) -> tuple[float, list[int]]:
        """The score of ``x`` and its leaves, to pass to ``learn_leaves`` when learning it."""
        total, leaves = self.forest.walk(x, self.r_mass, self._limit)
        if self.first_window:
            return 0.0, leaves
        return 1.0 - total / self._max_score, leaves

    def score_one(self, x: Sequence[float]) -> float:
        return self.walk(x)[0]

    def learn_one(self, x: Sequence[float]) -> None:
        self.learn_leaves(self.walk(x)[1])

    def learn_leaves(self, leaves: list[int]) -> None:
        start = self.counter * self.n_trees
        self.leaves[start:start + self.n_trees] = array(self.leaves.typecode, leaves)
        self.counter += 1
        if self.counter == self.window_size:
            masses = self.forest.masses(self.leaves, self.counter)
            self.r_mass = array(self._mass_code, masses.astype(_dtype(self._mass_code)).tobytes())
            self.first_window = False
            self.counter = 0

    def state(self) -> dict[str, Any]:
        return {"r_mass": np.frombuffer(self.r_mass, dtype=_dtype(self._mass_code)).copy(),
                "leaves": np.frombuffer(self.leaves, dtype=_dtype(self.leaves.typecode))
                [: self.counter * self.n_trees].copy(),
                "counter": self.counter, "first_window": self.first_window}

    def load_state(self, state: dict[str, Any]) -> None:
        code = self._mass_code
        self.r_mass = array(code, np.asarray(state["r_mass"], _dtype(code)).tobytes())
        counter = int(state["counter"])
        leaves = np.asarray(state["leaves"], _dtype(self.leaves.typecode))
        self.leaves[: counter * self.n_trees] = array(self.leaves.typecode, leaves.tobytes())
        self.counter = counter
        self.first_window = bool(state["first_window"])


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
        # The walk of the value last scored: learn_one of the same value reuses it.
        self._cached: tuple[float, tuple[float, list[int]]] | None = None

    @property
    def ready(self) -> bool:
        return self.trees.ready

    def _walk(self, x: float) -> tuple[float, list[int]]:
        cached = self._cached
        if cached is not None and cached[0] == x:
            return cached[1]
        walked = self.trees.walk(self.window.features_of(x))
        self._cached = (x, walked)
        return walked

    def score_one(self, x: float) -> float:
        return self._walk(x)[0]

    def learn_one(self, x: float) -> None:
        self.trees.learn_leaves(self._walk(x)[1])
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
