"""The snapshot encoding keeps every float exactly, including non-finite and huge ones."""

import math

import numpy as np
import pytest

from detector.engine.snapshot import decode, encode


@pytest.mark.parametrize("values", [
    [],
    [0.1, -2.5, 1e-300],
    [1e308, 1e308],                       # their sum overflows: not the fast path
    [1.0, math.inf, -math.inf],
    (1.0, 2.0),
    [1.0, 2, None, "x"],
])
def test_lists_round_trip(values):
    assert decode(encode({"v": values}))["v"] == list(values)


def test_nan_round_trips_as_nan():
    decoded = decode(encode({"v": [1.0, math.nan]}))["v"]
    assert decoded[0] == 1.0 and math.isnan(decoded[1])


def test_arrays_keep_their_dtype_and_shape():
    array = np.arange(6, dtype=np.uint16).reshape(2, 3)
    decoded = decode(encode({"a": array}))["a"]
    assert decoded.dtype == np.uint16 and decoded.shape == (2, 3)
    assert (decoded == array).all()
