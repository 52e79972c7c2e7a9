"""The progress line: redrawn in place on a terminal, periodic full lines elsewhere."""

from __future__ import annotations

import io

from detector.evaluate.progress import Progress


def run(tty: bool) -> str:
    out, now = io.StringIO(), [0.0]
    bar = Progress("hst", files=4, rows=400, stream=out, clock=lambda: now[0], tty=tty,
                   interval_s=10.0)
    for _ in range(4):
        now[0] += 5.0
        bar.advance(rows=100, files=1)
    bar.finish()
    return out.getvalue()


def test_terminal_line_is_redrawn_in_place_and_ends_with_a_newline():
    text = run(tty=True)
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "\rhst: 2/4 files, 200/400 rows (50%), 20 rows/s, ETA 0:00:10" in text
    assert text.rstrip().endswith("4/4 files, 400/400 rows (100%), 20 rows/s, done in 0:00:20")


def test_log_gets_a_line_at_most_every_interval_and_a_final_one():
    lines = run(tty=False).splitlines()
    assert lines == [
        "hst: 1/4 files, 100/400 rows (25%), 20 rows/s, ETA 0:00:15",
        "hst: 3/4 files, 300/400 rows (75%), 20 rows/s, ETA 0:00:05",
        "hst: 4/4 files, 400/400 rows (100%), 20 rows/s, done in 0:00:20",
    ]
