"""The detector protocol, in River's style, plus a small base class.

A detector scores a value *before* learning it (``score_one`` then ``learn_one``);
higher scores are more anomalous. Detectors are pure: no I/O, no clock, no global
random state. Constructor parameters are stored unchanged, so ``clone()`` makes a fresh
instance with the same parameters (one per stream from a prototype). ``state()`` and
``load_state()`` carry everything the detector learned, for checkpoints.

>>> from detector.engine.zscore import ZScore
>>> prototype = ZScore(warmup=3)
>>> detector = prototype.clone()
>>> for x in [10.0, 11.0, 9.0, 10.0]:
...     detector.learn_one(x)
>>> round(detector.score_one(14.0), 3), prototype.clone().score_one(14.0)
(4.899, 0.0)
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

X = TypeVar("X", contravariant=True)

VALUE_LIMIT = 1e100  # what the engine's models see of a larger |value|: squares stay finite


@runtime_checkable
class Detector(Protocol[X]):
    @property
    def ready(self) -> bool:
        """False while warming up (its scores are placeholders, not to be calibrated)."""
        ...

    def score_one(self, x: X) -> float:
        """Anomaly score of ``x`` given what was learned so far; changes nothing."""
        ...

    def learn_one(self, x: X) -> None:
        """Update the model with ``x``; returns None."""
        ...

    def clone(self) -> Self:
        """A fresh, untrained instance with the same parameters."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything learned so far, as plain data (numbers, lists, strings, numpy arrays)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` as written by ``state()`` of an identically built detector."""
        ...


class Base:
    """Stores nothing itself; gives ``clone`` and ``params`` from the constructor signature."""

    __slots__ = ()

    @property
    def ready(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        """The constructor parameters, as passed."""
        return {name: getattr(self, name) for name in _parameter_names(type(self))}

    def clone(self) -> Self:
        return type(self)(**self.params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


_NAMES: dict[type, tuple[str, ...]] = {}


def _parameter_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        signature = inspect.signature(cls.__init__)
        names = tuple(name for name in signature.parameters if name != "self")
        _NAMES[cls] = names
    return names
