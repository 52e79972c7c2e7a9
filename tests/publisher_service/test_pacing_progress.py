"""Rate control on a fake clock, and the progress line."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from harness import wait_until

from publisher.pacing import FakeClock, Pacer
from publisher.progress import Progress, ProgressReporter, progress_line


@pytest.mark.parametrize(("speed", "offsets", "wall"), [
    (1.0, [0, 10, 20], [0, 10, 20]),
    (60.0, [0, 60, 600], [0, 1, 10]),
    (0.5, [0, 1, 2], [0, 2, 4]),
    (0.0, [0, 1e6], [0, 0]),            # as fast as possible
])
def test_offsets_map_to_the_wall_clock(speed: float, offsets: list[float],
                                       wall: list[float]) -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(speed, clock=clock.now, sleep=clock.sleep)
    moments = []
    for offset in offsets:
        pacer.wait_for(offset)
        moments.append(clock.t - 100.0)
    assert moments == pytest.approx(wall)


def test_a_late_pacer_sends_at_once_and_keeps_its_lag() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock.now, sleep=clock.sleep)
    pacer.wait_for(0)
    clock.t = 30.0              # the broker held us up
    pacer.wait_for(10)
    assert clock.t == 30.0 and pacer.lag_s == 20.0
    pacer.wait_for(40)          # later ones keep the original schedule
    assert clock.t == 40.0


def test_a_stopped_pacer_does_not_wait() -> None:
    stop = threading.Event()
    stop.set()
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock.now, sleep=clock.sleep, stop=stop)
    pacer.wait_for(0)
    pacer.wait_for(3600)
    assert clock.t == 0.0


def test_negative_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="speed must be >= 0"):
        Pacer(-1)


def test_progress_line() -> None:
    line = progress_line(Progress(sent=1_234_567, in_flight=1000, buffered=42, dropped=3,
                                  reconnects=2, faults=7), rate=25_000.4)
    assert line == ("sent 1,234,567 (25,000/s)  in flight 1,000  buffered 42  dropped 3  "
                    "reconnects 2  faults 7")


def test_progress_is_logged_when_not_on_a_terminal(caplog) -> None:
    counter = {"sent": 0}

    def snapshot() -> Progress:
        counter["sent"] += 10
        return Progress(sent=counter["sent"])

    caplog.set_level(logging.INFO, logger="publisher.progress")
    reporter = ProgressReporter(snapshot, interval_s=0.01, stream=io.StringIO()).start()
    try:
        wait_until(lambda: "sent 20" in caplog.text, 30, what="two progress lines")
    finally:
        reporter.stop()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_redrawn_in_place() -> None:
    terminal = Terminal()
    reporter = ProgressReporter(lambda: Progress(sent=7), interval_s=60, stream=terminal).start()
    try:
        wait_until(lambda: "\rsent 7" in terminal.getvalue(), 30, what="the live line")
    finally:
        reporter.stop()
    assert terminal.getvalue().endswith("\x1b[K\n")  # cleared to the end, then a newline
