"""Speed and memory of the engine: ``python -m detector.engine.bench [--streams N]``.

Feeds a synthetic noisy daily-cycle signal to ``--streams`` streams in turn (cycling
over streams, as a live detector does), past every warm-up, and reports microseconds
of CPU per ``Engine.process`` call and bytes of engine state per stream, for the
default combination and for each registered detector alone. Timing lives here, not in
the tests; compare the numbers of one run with each other (this machine is shared).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time
import tracemalloc

from detector.engine.engine import Engine
from detector.engine.registry import univariate_names
from detector.engine.settings import EngineSettings


def _signal(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [20.0 + 3.0 * math.sin(i / 288 * 2 * math.pi) + rng.gauss(0.0, 0.3) for i in range(n)]


def measure(settings: EngineSettings, streams: int, warm: int, timed: int,
            interval: float = 1.0) -> tuple[float, float]:
    """(us per reading after warm-up, bytes of state per stream), readings ``interval`` s apart."""
    values = _signal(warm + timed, seed=1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = Engine(settings)
    process = engine.process
    for i in range(warm):
        for k in range(streams):
            process("site", f"dev{k}", "temperature", i * interval, values[i])
    per_stream = (tracemalloc.get_traced_memory()[0] - before) / streams
    tracemalloc.stop()
    start = time.process_time()
    for i in range(warm, warm + timed):
        for k in range(streams):
            process("site", f"dev{k}", "temperature", i * interval, values[i])
    elapsed = time.process_time() - start
    return elapsed / (timed * streams) * 1e6, per_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=300, help="readings per stream before timing")
    parser.add_argument("--timed", type=int, default=30, help="timed readings per stream")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between a stream's readings (60 with --warm 2500: the "
                             "seasonal detector past its first day)")
    parser.add_argument("--default-only", action="store_true", help="only the default engine")
    args = parser.parse_args(argv)
    cases = [("default " + "+".join(EngineSettings().enabled), EngineSettings())]
    if not args.default_only:
        cases += [(name, EngineSettings(enabled=[name])) for name in univariate_names()]
    print(f"{'detector':28s} {'us/reading':>10s} {'KB/stream':>10s}  ({args.streams} streams)")
    for label, settings in cases:
        streams = args.streams if "river" not in label else min(args.streams, 50)
        us, per_stream = measure(settings, streams, args.warm, args.timed, args.interval)
        note = f"  ({streams} streams)" if streams != args.streams else ""
        print(f"{label:28s} {us:10.1f} {per_stream / 1024:10.1f}{note}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
