"""Encoding of engine state: plain data and numpy arrays to bytes and back, exactly.

Layout: an 8-byte magic ``IOTWENG`` + format version byte, then zlib-compressed JSON.
Floats survive exactly (shortest round-trip repr); numpy arrays are stored as dtype,
shape and base64 of their bytes.

>>> import numpy as np
>>> data = {"n": 3, "mean": 0.1 + 0.2, "mass": np.arange(4, dtype=np.uint8)}
>>> back = decode(encode(data))
>>> back["mean"] == 0.1 + 0.2, back["mass"].dtype.name, back["mass"].tolist()
(True, 'uint8', [0, 1, 2, 3])
"""

from __future__ import annotations

import base64
import math
import zlib
from typing import Any

import numpy as np
import orjson

from iotwatch import IotwatchError

MAGIC = b"IOTWENG"
VERSION = 1
_ARRAY = "$ndarray"


class SnapshotError(IotwatchError):
    """Bytes that are not an engine snapshot this version can read."""


def encode(state: Any) -> bytes:
    return seal(plain_bytes(state))


def plain_bytes(state: Any) -> bytes:
    """The uncompressed JSON of ``state``: ``seal`` it (any thread) to get ``encode``'s bytes."""
    # Most states are plain already (str keys, finite floats, no arrays): orjson takes them
    # as they are, at a fifth of the walk's cost. It refuses arrays and other keys
    # (TypeError) and writes a non-finite float as null: those go the long way, and so
    # does a state with a real None, which is rare.
    try:
        body = orjson.dumps(state)
    except TypeError:
        pass
    else:
        if b"null" not in body:
            return body
    return orjson.dumps(_to_plain(state))


def seal(body: bytes) -> bytes:
    """Magic, version and compression around ``plain_bytes`` (zlib releases the GIL)."""
    return MAGIC + bytes([VERSION]) + zlib.compress(body, 1)


def decode(data: bytes) -> Any:
    if data[: len(MAGIC)] != MAGIC or len(data) <= len(MAGIC):
        raise SnapshotError("not an engine snapshot (bad magic)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise SnapshotError(f"snapshot format version {version}, this engine reads {VERSION}")
    try:
        return _from_plain(orjson.loads(zlib.decompress(data[len(MAGIC) + 1:])))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"corrupt engine snapshot: {exc}") from exc


_AS_IS = frozenset({str, int, bool, type(None)})
_FLOAT = {float}


def _to_plain(node: Any) -> Any:
    """JSON-ready ``node``: exact types first (most of a snapshot), then ``_to_plain_any``."""
    kind = type(node)
    if kind is dict:
        out = {}
        for key, value in node.items():
            kind = type(value)
            if kind in _AS_IS or (kind is float and math.isfinite(value)):
                out[key if type(key) is str else str(key)] = value
            else:
                out[key if type(key) is str else str(key)] = _to_plain(value)
        return out
    if kind in _AS_IS or (kind is float and math.isfinite(node)):
        return node
    if kind is list or kind is tuple:
        kinds = set(map(type, node))
        if kinds == _FLOAT and math.isfinite(sum(node)):
            return node  # finite floats (score histories) go to orjson as they are
        if kinds <= _AS_IS:
            return node
        return [_to_plain(v) for v in node]
    return _to_plain_any(node)


def _to_plain_any(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        # Most of a snapshot is lists of finite floats (score histories): those go to
        # orjson as they are, without a call per element.
        if all(type(v) is float for v in node) and math.isfinite(sum(node)):
            return node
        return [_to_plain(v) for v in node]
    if isinstance(node, np.ndarray):
        array = np.ascontiguousarray(node)
        return {_ARRAY: array.dtype.str, "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode("ascii")}
    if isinstance(node, float) and not math.isfinite(node):
        return {"$float": repr(node)}
    return node


def _from_plain(node: Any) -> Any:
    if isinstance(node, dict):
        if _ARRAY in node:
            raw = base64.b64decode(node["data"])
            return np.frombuffer(raw, dtype=np.dtype(node[_ARRAY])).reshape(node["shape"]).copy()
        if set(node) == {"$float"}:
            return float(node["$float"])
        return {k: _from_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_from_plain(v) for v in node]
    return node
