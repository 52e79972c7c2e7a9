"""Injected-fault suite: which publisher faults does the engine alert on, and how often
does it alert on a fault-free stream?

Signals and faults come from the publisher's own code (``publisher.signals.Signal``,
``publisher.faults.StreamFaults``), readings go through ``detector.engine.Engine`` exactly
as the detector service feeds it. The stream is a temperature with a strong daily cycle
(amplitude 10x the noise); fault sizes are multiples of the publisher's
``typical_scale`` (spike 8x, level shift 4.5x, noise burst 4.5x, drift 6x over 60
readings), ``stuck`` repeats the last value, ``garbage`` is the publisher's out-of-range
reading. ``glitch+<fault>`` injects one such garbage reading and the fault ``--gap``
readings later, ``huge+<fault>`` the same with an absurd reading (+-``--glitch``,
default 1e300): they count as hit only when the *later* fault alerts, i.e. the glitch
did not blind the stream.

A fault is hit when an alert fires during it or within ``--grace`` readings after it;
any other firing is a false alert. Fault-free runs count false alerts only.

    python bench/faults.py                      # the default combination, 5 seeds
    python bench/faults.py --enabled zscore hst --seeds 10
    python bench/faults.py --config config/detector.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.engine import Engine, EngineSettings  # noqa: E402
from publisher.faults import PlannedFault, StreamFaults  # noqa: E402
from publisher.fleet import DailyCycle, MetricSpec, RandomFaults, StreamSpec  # noqa: E402
from publisher.signals import Signal, stream_rng, typical_scale  # noqa: E402

INTERVAL_S = 60.0
START = 1_768_867_200.0  # 2026-01-20T00:00:00Z
MODEL = MetricSpec(unit="C", baseline=20.0, noise=0.5, daily=DailyCycle(amplitude=5.0),
                   resolution=0.01, range=(-40.0, 85.0))
SIZES = {"spike": 8.0, "level_shift": 4.5, "noise_burst": 4.5, "drift": 6.0}
DURATION = {"spike": 0, "garbage": 0, "level_shift": 120, "noise_burst": 60, "stuck": 60,
            "drift": 60}  # readings
KINDS = ("spike", "level_shift", "noise_burst", "stuck", "drift", "garbage",
         "glitch+spike", "glitch+level_shift", "glitch+noise_burst", "huge+spike",
         "huge+level_shift")


@dataclass
class Run:
    hit: bool | None          # None: a fault-free run
    false: int
    errors: int               # readings Engine.process raised on (the service skips them)
    readings: int
    seconds: float


def _fault(kind: str, at: int, sign: float, glitch: float) -> PlannedFault:
    start = START + at * INTERVAL_S
    end = start + DURATION.get(kind, 0) * INTERVAL_S
    scale = typical_scale(MODEL)
    params: dict[str, object] = {}
    if kind == "spike":
        params = {"magnitude": sign * SIZES[kind] * scale}
    elif kind in ("level_shift", "drift"):
        params = {"delta": sign * SIZES[kind] * scale}
    elif kind == "noise_burst":
        params = {"std": SIZES[kind] * scale}
    elif kind == "garbage":
        params = {"mode": "out_of_range"}
    elif kind == "glitch":      # the publisher's own out-of-range value
        params = {"mode": "out_of_range"}
        kind = "garbage"
    elif kind == "huge":        # an absurd one: +-glitch
        params = {"mode": "out_of_range", "value": sign * glitch}
        kind = "garbage"
    return PlannedFault(kind, start, end, params, "scheduled")


def run_one(settings: EngineSettings, kind: str | None, seed: int, readings: int,
            grace: int, gap: int, glitch: float) -> Run:
    """One stream of ``readings`` readings with fault ``kind`` (None: fault-free)."""
    rng = stream_rng(seed, "bench/faults", kind or "none")
    at = int(rng.integers(int(readings * 0.55), int(readings * 0.7)))
    sign = 1.0 if rng.uniform() < 0.5 else -1.0
    planned: list[PlannedFault] = []
    if kind is not None and "+" in kind:
        first, then = kind.split("+")
        planned = [_fault(first, at - gap, sign, glitch), _fault(then, at, sign, glitch)]
    elif kind is not None:
        planned = [_fault(kind, at, sign, glitch)]
    stream = StreamSpec(0, "bench", "sensor", "temperature", MODEL, INTERVAL_S, 0.0)
    signal = Signal(MODEL, seed, stream.name)
    faults = StreamFaults(stream, planned, RandomFaults(), run_start=START, seed=seed)
    engine = Engine(settings)
    last: float | None = None
    firing: list[float] = []
    spent = 0.0
    errors = 0
    for k in range(readings):
        ts = START + k * INTERVAL_S
        outcome = faults.apply(ts, signal.value(ts), last)
        if outcome.value is None or outcome.malformed:
            continue
        last = outcome.value
        began = time.process_time()
        try:
            result = engine.process("bench", "sensor", "temperature", ts, outcome.value)
        except (ArithmeticError, ValueError):
            errors += 1
            continue
        finally:
            spent += time.process_time() - began
        if result.event is not None and result.event.state == "firing":
            firing.append(ts)
    faults.finish()
    windows = [(label.start, label.end + grace * INTERVAL_S) for label in faults.completed]
    false = sum(1 for ts in firing if not any(lo <= ts <= hi for lo, hi in windows))
    hit = None
    if windows:
        lo, hi = windows[-1]   # the fault that counts: the last one (after the glitch)
        hit = any(lo <= ts <= hi for ts in firing)
    return Run(hit, false, errors, readings, spent)


def suite(settings: EngineSettings, seeds: int, readings: int, grace: int, gap: int,
          glitch: float, kinds: tuple[str, ...] = KINDS) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    total_seconds = 0.0
    total_readings = 0
    for kind in (*kinds, None):
        runs = [run_one(settings, kind, seed, readings, grace, gap, glitch)
                for seed in range(seeds)]
        total_seconds += sum(r.seconds for r in runs)
        total_readings += sum(r.readings for r in runs)
        rows[kind or "none (fault-free)"] = {
            "runs": len(runs), "hit": sum(1 for r in runs if r.hit),
            "false": sum(r.false for r in runs), "errors": sum(r.errors for r in runs)}
    rows["_total"] = {"us_per_reading": 1e6 * total_seconds / max(total_readings, 1)}
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enabled", nargs="+", help="detectors (default: the engine default)")
    parser.add_argument("--config", help="detector YAML whose 'detector:' section is used")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--readings", type=int, default=4000)
    parser.add_argument("--grace", type=int, default=10, help="readings after a fault")
    parser.add_argument("--gap", type=int, default=500, help="readings from glitch to fault")
    parser.add_argument("--glitch", type=float, default=1e300, help="the glitch's |value|")
    parser.add_argument("--json", help="write the table as JSON")
    args = parser.parse_args(argv)
    data: dict[str, object] = {}
    if args.config:
        import yaml

        section = yaml.safe_load(Path(args.config).read_text())["detector"]
        fields = EngineSettings.model_fields
        data = {k: v for k, v in section.items() if k in fields}
    if args.enabled:
        data["enabled"] = args.enabled
    settings = EngineSettings.model_validate(data)
    rows = suite(settings, args.seeds, args.readings, args.grace, args.gap, args.glitch)
    speed = rows.pop("_total")["us_per_reading"]
    print(f"detectors: {' + '.join(settings.enabled)}; {args.seeds} seeds x "
          f"{args.readings} readings; glitch |value| {args.glitch:g}, {args.gap} readings "
          f"before the fault")
    print(f"{'fault':<22}{'hit':>8}{'false':>8}{'errors':>8}")
    hits = runs = false = errors = 0
    for kind, row in rows.items():
        fault_free = kind.startswith("none")
        hit = "-" if fault_free else f"{row['hit']}/{row['runs']}"
        print(f"{kind:<22}{hit:>8}{row['false']:>8}{row['errors']:>8}")
        false += int(row["false"])
        errors += int(row["errors"])
        if not fault_free:
            hits += int(row["hit"])
            runs += int(row["runs"])
    print(f"{'total':<22}{f'{hits}/{runs}':>8}{false:>8}{errors:>8}")
    print(f"{speed:.1f} us/reading (engine CPU time, this machine)")
    if args.json:
        Path(args.json).write_text(json.dumps({"enabled": settings.enabled, "rows": rows,
                                               "us_per_reading": speed}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
