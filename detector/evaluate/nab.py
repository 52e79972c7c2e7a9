"""The NAB score, implemented from the rules Numenta published with the benchmark.

Sources: Lavin & Ahmad, "Evaluating real-time anomaly detection algorithms - the
Numenta Anomaly Benchmark" (2015), and the scoring code of NAB v1.1 (``nab/sweeper.py``,
``nab/optimizer.py``, ``nab/runner.py``). The rules:

- The first 15% of each file (at most 750 rows) is probation: never scored.
- A detection is a row whose anomaly score is >= the threshold.
- Inside a labelled window only the earliest detection counts. It earns
  ``A_tp * S(p) / S(-1)`` where ``S(p) = 2 / (1 + exp(5 p)) - 1`` is the scaled sigmoid
  and ``p = -(last - i + 1) / width`` is the row's position relative to the window's
  right edge (-1 at its first row): a detection on the first row earns exactly ``A_tp``.
- A window with no detection costs ``-A_fn``.
- A detection outside every window costs ``A_fp * S((i - last) / (width - 1))``
  measured from the preceding window's last row (so a detection just after a window
  costs little and one three window-widths later costs the full ``A_fp``); before the
  first window it costs ``A_fp``.
- One threshold per profile, chosen to maximise the summed score over the corpus.
- Normalised so that the null detector (never detects) scores 0 and a perfect one
  (detects every window on its first row, nothing else) scores 100.

>>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.5)
(0.98661, 0.0, -1.0)
>>> probation_rows(4032), probation_rows(22695)
(604, 750)
>>> import numpy as np
>>> scores = np.zeros(100); scores[50] = 0.9       # the first row of the window 50..59
>>> corpus = [ScoredFile("a.csv", scores, (Window(50, 59),))]
>>> round(score_corpus(corpus, PROFILES["standard"]).score, 6)
100.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # NAB: probationPercent * 5000


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB application profile (NAB's ``config/profiles.json``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    p.name: p for p in (
        Profile("standard", 1.0, 0.11, 1.0),
        Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
        Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
    )
}


@dataclass(frozen=True)
class Window:
    """A labelled anomaly window as row indices ``first..last`` (both inclusive)."""

    first: int
    last: int

    @property
    def width(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class ScoredFile:
    """One file's anomaly scores (row order) and its labelled windows (in row order)."""

    name: str
    scores: np.ndarray
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class ProfileScore:
    """The NAB result of one profile on a corpus."""

    profile: str
    score: float | None        # normalised: null detector 0, perfect 100 (None: no windows)
    raw: float                 # summed weighted score at the chosen threshold
    threshold: float           # detections are rows with anomaly_score >= threshold
    null: float
    perfect: float
    windows: int               # windows with at least one row after probation
    detected_windows: int
    false_positive_rows: int
    per_file: dict[str, float] = field(default_factory=dict)  # raw score of each file

    def as_dict(self) -> dict:
        return {"score": self.score, "raw": self.raw, "threshold": self.threshold,
                "null": self.null, "perfect": self.perfect, "windows": self.windows,
                "detected_windows": self.detected_windows,
                "false_positive_rows": self.false_positive_rows}


def probation_rows(rows: int) -> int:
    """Rows at the start of a file that NAB never scores."""
    return int(min(math.floor(PROBATION_FRACTION * rows), PROBATION_MAX_ROWS))


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: about 0.987 at -1 (window start), 0 at 0 (window end), -1 past 3."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


@dataclass(frozen=True)
class _Credits:
    """Per scorable row: which window it is in (-1: outside) and its unweighted credit.

    Inside a window the credit is the earliness reward in (0, 1]; outside, the
    false-positive cost factor in [-1, 0].
    """

    scores: np.ndarray
    window: np.ndarray
    credit: np.ndarray
    windows: int


def _credits(file: ScoredFile, window_offset: int = 0) -> _Credits:
    rows = len(file.scores)
    start = probation_rows(rows)
    index = np.arange(rows, dtype=np.float64)
    window_of = np.full(rows, -1, dtype=np.int64)
    credit = np.full(rows, -1.0)  # before the first window: the full false-positive cost
    scorable = [w for w in file.windows if w.last >= start]
    ids = {w: window_offset + k for k, w in enumerate(scorable)}
    previous: Window | None = None
    covered = 0  # rows before this index are already assigned
    for window in sorted(file.windows, key=lambda w: w.first):
        if window.first < covered or window.first >= rows:
            continue  # overlaps the previous window (its rows are counted there) or out of range
        _after(credit, index, previous, covered, window.first)
        last = min(window.last, rows - 1)
        inside = slice(window.first, last + 1)
        credit[inside] = _sigmoid(-(window.last - index[inside] + 1) / window.width) / _MAX_TP
        window_of[inside] = ids.get(window, -1)
        previous, covered = window, last + 1
    _after(credit, index, previous, covered, rows)
    keep = slice(start, rows)
    return _Credits(np.asarray(file.scores, dtype=np.float64)[keep], window_of[keep],
                    credit[keep], len(scorable))


def _after(credit: np.ndarray, index: np.ndarray, previous: Window | None, begin: int,
           end: int) -> None:
    """False-positive cost of rows ``begin..end-1``, which follow ``previous`` (if any)."""
    if previous is None or begin >= end:
        return
    # NAB divides by (width - 1); a one-row window would divide by zero.
    distance = (index[begin:end] - previous.last) / max(previous.width - 1, 1)
    credit[begin:end] = _sigmoid(distance)


def _sigmoid(position: np.ndarray) -> np.ndarray:
    """:func:`scaled_sigmoid` over an array."""
    with np.errstate(over="ignore"):
        values = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, values)


def sweep(files: Sequence[ScoredFile], profile: Profile) -> list[tuple[float, float]]:
    """``(threshold, raw corpus score)`` for every distinct threshold, highest first.

    The first entry is a threshold above every score (nothing detected).

    >>> f = ScoredFile("f", np.array([0.0] * 20 + [0.2, 0.9, 0.1]), (Window(21, 22),))
    >>> [(t, round(s, 4)) for t, s in sweep([f], PROFILES["standard"])]
    [(inf, -1.0), (0.9, 1.0), (0.2, 0.89), (0.1, 0.89), (0.0, -0.98)]
    """
    credits = _concat_credits(files)
    weighted = np.where(credits.window >= 0, profile.tp_weight * credits.credit,
                        profile.fp_weight * credits.credit)
    order = np.argsort(-credits.scores, kind="stable")
    scores, window, value = credits.scores[order], credits.window[order], weighted[order]
    # What each row adds when the threshold drops to its score: its false-positive cost,
    # or inside a window how much it improves on the window's best (earliest) detection.
    gain = np.where(window < 0, value, 0.0)
    inside = np.flatnonzero(window >= 0)
    by_window = inside[np.argsort(window[inside], kind="stable")]
    bounds = np.flatnonzero(np.diff(window[by_window])) + 1
    for rows in np.split(by_window, bounds) if by_window.size else ():
        best = np.maximum.accumulate(np.concatenate(([-profile.fn_weight], value[rows])))
        gain[rows] = np.diff(best)
    start = -profile.fn_weight * credits.windows
    totals = start + np.cumsum(gain)
    last_of_each_score = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) \
        if scores.size else np.empty(0, dtype=np.int64)
    return [(math.inf, start)] + [
        (float(t), float(v)) for t, v in zip(scores[last_of_each_score],
                                             totals[last_of_each_score], strict=True)]


def score_corpus(files: Sequence[ScoredFile], profile: Profile) -> ProfileScore:
    """Optimise one threshold for ``profile`` over ``files`` and score them with it."""
    candidates = sweep(files, profile)
    # Highest score wins; among equal scores the highest threshold (fewest detections).
    threshold, _ = max(candidates, key=lambda c: (c[1], c[0]))
    return score_at(files, profile, threshold)


def score_at(files: Sequence[ScoredFile], profile: Profile, threshold: float) -> ProfileScore:
    """Score ``files`` with a given threshold (rows with score >= threshold detect)."""
    per_file: dict[str, float] = {}
    windows = detected = fp_rows = 0
    for file in files:
        credits = _credits(file)
        raw, found, false_rows = _file_raw(credits, profile, threshold)
        per_file[file.name] = raw
        windows += credits.windows
        detected += found
        fp_rows += false_rows
    raw_total = sum(per_file.values())
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    normalised = None if perfect == null else 100.0 * (raw_total - null) / (perfect - null)
    return ProfileScore(profile.name, normalised, raw_total, threshold, null, perfect, windows,
                        detected, fp_rows, per_file)


def score_profiles(files: Sequence[ScoredFile],
                   profiles: Sequence[Profile] = tuple(PROFILES.values()),
                   ) -> dict[str, ProfileScore]:
    """NAB results for every profile, each with its own optimised threshold."""
    return {p.name: score_corpus(files, p) for p in profiles}


def _file_raw(credits: _Credits, profile: Profile, threshold: float) -> tuple[float, int, int]:
    detected = credits.scores >= threshold
    outside = detected & (credits.window < 0)
    raw = float(profile.fp_weight * credits.credit[outside].sum())
    found = 0
    for window in range(credits.windows):
        hits = np.flatnonzero(detected & (credits.window == window))
        if hits.size:
            found += 1
            raw += profile.tp_weight * float(credits.credit[hits].max())
        else:
            raw -= profile.fn_weight
    return raw, found, int(outside.sum())


def _concat_credits(files: Sequence[ScoredFile]) -> _Credits:
    parts: list[_Credits] = []
    offset = 0
    for file in files:
        part = _credits(file, offset)
        offset += part.windows
        parts.append(part)
    if not parts:
        empty = np.empty(0)
        return _Credits(empty, np.empty(0, dtype=np.int64), empty, 0)
    return _Credits(np.concatenate([p.scores for p in parts]),
                    np.concatenate([p.window for p in parts]),
                    np.concatenate([p.credit for p in parts]), offset)
