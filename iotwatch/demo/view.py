"""The demo's terminal view: a live screen while it runs, and the summary at the end.

Rendering is pure (state in, text out); the caller decides whether to redraw a terminal
or print a line per tick to a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from iotwatch.demo.score import DeliveryScore, FaultScore, Stream

CLEAR_SCREEN = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class LiveState:
    """Everything one frame of the live view shows."""

    elapsed_s: float
    duration_s: float | None
    readings_total: int
    rate_per_s: float
    streams: dict[Stream, tuple[int, float | None, bool]]   # count, last value, firing
    firing: list[Stream]
    alerts_published: int
    faults_injected: int
    delivered: dict[str, int]                              # receiver -> notifications
    services: dict[str, str] = field(default_factory=dict)  # name -> online/offline/...
    rejected: int = 0
    last_deliveries: list[str] = field(default_factory=list)


def render_live(state: LiveState, max_streams: int = 12) -> str:
    """A full screen: header, streams table, current anomalies, deliveries.

    >>> frame = render_live(LiveState(5.0, 45.0, 120, 24.0, {("p", "b", "t"): (40, 21.5, True)},
    ...                               [("p", "b", "t")], 1, 1, {"webhook": 1, "email": 0}))
    >>> print(frame.splitlines()[0])
    iotwatch demo  5s / 45s   readings 120 (24.0/s)   faults injected 1   alerts 1   rejected 0
    >>> "FIRING" in frame and "webhook 1" in frame
    True
    """
    until = f" / {state.duration_s:.0f}s" if state.duration_s else ""
    lines = [f"iotwatch demo  {state.elapsed_s:.0f}s{until}   readings {state.readings_total} "
             f"({state.rate_per_s:.1f}/s)   faults injected {state.faults_injected}   "
             f"alerts {state.alerts_published}   rejected {state.rejected}"]
    if state.services:
        lines.append("services: " + "  ".join(f"{name} {status}" for name, status
                                              in sorted(state.services.items())))
    lines += ["", f"{'stream':<44} {'readings':>8} {'last value':>11}  state"]
    shown = sorted(state.streams.items(), key=lambda item: (not item[1][2], item[0]))
    for stream, (count, last, firing) in shown[:max_streams]:
        value = "" if last is None else f"{last:.2f}"
        lines.append(f"{'/'.join(stream):<44} {count:>8} {value:>11}  "
                     f"{'FIRING' if firing else 'ok'}")
    if len(shown) > max_streams:
        lines.append(f"... and {len(shown) - max_streams} more streams")
    lines += ["", "anomalies now: " + (", ".join("/".join(s) for s in state.firing) or "none"),
              "alerts delivered: " + "   ".join(f"{name} {count}" for name, count
                                                in sorted(state.delivered.items()))]
    lines += [f"  {line}" for line in state.last_deliveries]
    return "\n".join(lines)


def render_line(state: LiveState) -> str:
    """One line per tick for logs (stdout not a terminal).

    >>> render_line(LiveState(5.0, 45.0, 120, 24.0, {}, [], 1, 2, {"email": 1}))
    't=5s readings=120 rate=24.0/s faults=2 alerts=1 firing=0 delivered: email=1'
    """
    delivered = " ".join(f"{name}={count}" for name, count in sorted(state.delivered.items()))
    return (f"t={state.elapsed_s:.0f}s readings={state.readings_total} "
            f"rate={state.rate_per_s:.1f}/s faults={state.faults_injected} "
            f"alerts={state.alerts_published} firing={len(state.firing)} delivered: {delivered}")


@dataclass(frozen=True)
class Summary:
    faults: FaultScore
    deliveries: DeliveryScore
    readings_seen: int
    streams: int
    points_stored: dict[str, int]
    store: str
    speed: float
    problems: Sequence[str] = ()

    @property
    def passed(self) -> bool:
        return (not self.problems and bool(self.faults.matches) and not self.faults.missed
                and self.deliveries.complete)


def render_summary(summary: Summary) -> str:
    """The end-of-run report: faults vs detections, delay, false alarms, deliveries."""
    faults = summary.faults
    lines = ["", "=== iotwatch demo summary ===",
             f"readings seen on the broker: {summary.readings_seen} from {summary.streams} streams",
             "points stored: " + ", ".join(f"{k} {v}" for k, v in
                                            sorted(summary.points_stored.items())) +
             f" ({summary.store})",
             f"faults injected: {len(faults.matches)}   detected: {faults.detected}   "
             f"rejected: {faults.rejected}   missed: {len(faults.missed)}   "
             f"false alarms: {len(faults.false_alarms)}"]
    for match in faults.matches:
        where = "/".join(match.fault.stream)
        if match.alert is not None:
            delay = match.delay_s or 0.0
            plant = "on its first reading" if delay == 0 else f"after {delay:.1f} s of plant time"
            wall = match.wall_delay_s
            waited = "" if wall is None else f", alert {_duration(wall)} after that reading (wall)"
            lines.append(f"  detected  {match.fault.kind:<12} {where:<40} {plant}{waited}")
        elif match.rejected:
            lines.append(f"  rejected  {match.fault.kind:<12} {where:<40} dead-lettered "
                         "with its reason")
        else:
            lines.append(f"  MISSED    {match.fault.kind:<12} {where}")
    if faults.delays:
        ordered = sorted(faults.delays)
        walls = sorted(m.wall_delay_s for m in faults.matches if m.wall_delay_s is not None)
        lines.append(f"detection delay (plant time): median {ordered[len(ordered) // 2]:.1f} s, "
                     f"max {ordered[-1]:.1f} s" + (
                         f"; measured wall clock: median {_duration(walls[len(walls) // 2])}, "
                         f"max {_duration(walls[-1])}" if walls else ""))
    for alarm in faults.false_alarms:
        lines.append(f"  false alarm {'/'.join(alarm.stream)} (alert {alarm.fingerprint})")
    deliveries = summary.deliveries
    lines.append(f"alert notifications expected (each firing, and each alert's last state): "
                 f"{len(deliveries.expected)}")
    for receiver in sorted(deliveries.delivered):
        missing = deliveries.missing(receiver)
        got = len(deliveries.expected) - len(missing)
        lines.append(f"  {receiver:<8} delivered {got}/{len(deliveries.expected)}"
                     + (f"   MISSING {sorted(missing)}" if missing else ""))
    lines += [f"problem: {p}" for p in summary.problems]
    lines.append("RESULT: PASS (every injected fault detected or its reading rejected, every "
                 "alert delivered to every receiver)" if summary.passed else "RESULT: FAIL")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """``12 ms`` below a second, ``1.25 s`` above."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
