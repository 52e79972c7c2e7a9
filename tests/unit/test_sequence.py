"""Sequence gaps: what each arrival order counts as."""

from __future__ import annotations

import pytest

from detector.sequence import WINDOW, SequenceTracker

CASES = [
    # (seqs of one stream in arrival order, missing, duplicated, out_of_order, restarts)
    ([0, 1, 2, 3], 0, 0, 0, 0),
    ([5, 6, 7], 0, 0, 0, 0),                      # counting need not start at 0
    ([0, 1, 4], 2, 0, 0, 0),                      # 2 and 3 never came
    ([0, 1, 1, 2], 0, 1, 0, 0),                   # a QoS 1 redelivery
    ([0, 2, 1, 3], 0, 0, 1, 0),                   # late, not lost
    ([0, 3, 1, 1], 1, 1, 1, 0),                   # late once, then again: a duplicate
    ([0, 1, 2, 2, 2], 0, 2, 0, 0),
    ([0, 1000, 999], 998, 0, 1, 0),               # a big hole, one of it came late
    ([0, WINDOW + 10, 5], WINDOW + 9, 0, 0, 1),   # too far behind: the publisher restarted
    ([100, 101, 0, 1, 2], 0, 0, 0, 1),            # restart counted once, then in order
    ([0, 1, 2, 1, 0], 0, 2, 0, 0),
]


@pytest.mark.parametrize(("seqs", "missing", "duplicated", "out_of_order", "restarts"), CASES)
def test_counts(seqs, missing, duplicated, out_of_order, restarts):
    tracker = SequenceTracker()
    for seq in seqs:
        tracker.observe("s/d/m", seq)
    counts = tracker.stream("s/d/m")
    assert (counts["missing"], counts["duplicated"], counts["out_of_order"],
            counts["restarts"]) == (missing, duplicated, out_of_order, restarts)
    assert counts["received"] == len(seqs)
    totals = tracker.totals
    assert (totals["missing"], totals["duplicated"], totals["out_of_order"]) == (
        missing, duplicated, out_of_order)


def test_streams_are_counted_apart():
    tracker = SequenceTracker()
    for seq in range(10):
        tracker.observe("s/a/m", seq)
        tracker.observe("s/b/m", seq * 2)
    assert tracker.stream("s/a/m")["missing"] == 0
    assert tracker.stream("s/b/m")["missing"] == 9
    assert tracker.totals["missing"] == 9
    assert tracker.streams_with_gaps() == 1
    assert tracker.stream("s/c/m") is None


def test_degraded_above_the_bound_and_back_below_half_of_it():
    changes = []
    tracker = SequenceTracker(max_gap_rate=0.02, window=1000,
                              on_change=lambda degraded, why: changes.append((degraded, why)))
    seq = 0
    for _ in range(2000):  # clean
        tracker.observe("s/d/m", seq)
        seq += 1
    assert not tracker.degraded and tracker.gap_rate() == 0.0
    seq += 100  # the broker dropped 100
    tracker.observe("s/d/m", seq)
    assert tracker.degraded and len(changes) == 1 and changes[0][0] is True
    assert "missing" in changes[0][1] and "seq" in changes[0][1]
    for _ in range(500):  # still inside the window: stays degraded, no second message
        seq += 1
        tracker.observe("s/d/m", seq)
    assert tracker.degraded and len(changes) == 1
    for _ in range(3000):  # two clean blocks later the hole has left the window
        seq += 1
        tracker.observe("s/d/m", seq)
    assert not tracker.degraded and [c[0] for c in changes] == [True, False]


def test_a_few_readings_never_make_it_degraded():
    tracker = SequenceTracker(max_gap_rate=0.01)
    for seq in (0, 5, 9):
        tracker.observe("s/d/m", seq)
    assert tracker.gap_rate() == 0.0 and not tracker.degraded


def test_state_per_stream_stays_bounded():
    tracker = SequenceTracker()
    for seq in range(0, 10_000_000, 997):
        tracker.observe("s/d/m", seq)
    state = tracker._streams["s/d/m"]  # noqa: SLF001 - the bound is the point of this test
    assert state.seen.bit_length() <= WINDOW
