"""Cost of forecasting per stream in the detector service: memory and CPU per reading.

    python bench/forecast_cost.py [--streams 1000] [--readings 2000] [--season-s 86400]

Feeds ``--streams`` streams of 1-minute readings through ``StreamForecasts`` (the code the
detector runs, default settings: horizon 12, every 6) and reports the memory held per
stream (tracemalloc, after every stream has a whole season) and microseconds per reading,
including the forecast points' line protocol. Ratios only: run on a quiet machine for
absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.forecast.settings import ForecastSettings  # noqa: E402
from detector.forecast.streams import StreamForecasts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=2000, help="per stream")
    parser.add_argument("--step-s", type=float, default=60.0)
    parser.add_argument("--season-s", type=float, default=86400.0)
    args = parser.parse_args()
    settings = ForecastSettings(enabled=True, season_s=args.season_s)
    names = [(f"site-{s % 10}", f"dev-{s}", "temperature") for s in range(args.streams)]

    def feed(forecasts: StreamForecasts) -> int:
        lines = 0
        for i in range(args.readings):
            ts = 1.7e9 + i * args.step_s
            value = 20 + 5 * math.sin(2 * math.pi * ts / 86400)
            for site, device, metric in names:
                lines += len(forecasts.observe(site, device, metric, ts, value)[0])
        return lines

    StreamForecasts(settings).observe("warm", "up", "imports", 0.0, 0.0)  # lazy imports
    started = time.perf_counter()
    lines = feed(StreamForecasts(settings))
    seconds = time.perf_counter() - started
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = StreamForecasts(settings)
    feed(kept)
    after = tracemalloc.take_snapshot()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    readings = args.streams * args.readings
    print(f"{args.streams} streams x {args.readings} readings, season {args.season_s:g} s "
          f"at {args.step_s:g} s steps ({kept.summaries()[names[0][0] + '/' + names[0][1] + '/temperature']['season']} steps): "
          f"{held / args.streams:,.0f} B per stream, {1e6 * seconds / readings:.1f} us per "
          f"reading, {lines / readings:.2f} forecast points per reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
