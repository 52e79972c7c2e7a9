"""Compare forecasters on labelled recordings: ours (robust damped Holt-Winters) vs River's.

    python bench/forecast_compare.py /work/shared/datasets/nab [--horizon 12] [--every 6]

For each file and model: MAE relative to the seasonal-naive forecast on the same points
(below 1 beats it), sMAPE, interval coverage, microseconds per reading and state bytes.
River's ``time_series.HoltWinters`` (same alpha/beta/gamma, the season in readings) and
``SNARIMAX`` are run index-based (they have no notion of time); ours follows timestamps.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.evaluate import datasets  # noqa: E402
from detector.forecast.accuracy import Tally, run_series, smape  # noqa: E402
from detector.forecast.settings import ModelSettings, StreamForecast  # noqa: E402


def river_run(make, values, season, horizon, every):
    model = make()
    err = base = sm = 0.0
    n = 0
    seconds = 0.0
    pending = {}
    for i, y in enumerate(values):
        for _h, f, naive in pending.pop(i, ()):
            err += abs(y - f)
            base += abs(y - naive)
            sm += smape(y, f)
            n += 1
        started = time.perf_counter()
        model.learn_one(y)
        ready = i >= 2 * season + 50
        if ready and (i + 1) % every == 0:
            forecast = model.forecast(horizon=horizon)
            seconds += time.perf_counter() - started
            for h, f in enumerate(forecast, start=1):
                j = i + h - season * math.ceil(h / season)
                if math.isfinite(f):
                    pending.setdefault(i + h, []).append((h, f, values[j]))
        else:
            seconds += time.perf_counter() - started
    return {"rel_mae": err / base if base else float("nan"), "smape": sm / n if n else None,
            "us": 1e6 * seconds / len(values), "bytes": len(pickle.dumps(model)), "n": n}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--season-s", type=float, default=86400.0)
    parser.add_argument("--river", action="store_true", help="also run River's models")
    parser.add_argument("--grid", action="store_true", help="try a few alpha/gamma values")
    args = parser.parse_args()
    fmt = datasets.detect_format(args.data_dir)
    series = datasets.load(args.data_dir, fmt, datasets.default_labels(args.data_dir, fmt))
    variants = {"ours": ModelSettings()}
    if args.grid:
        for alpha in (0.1, 0.3, 0.5):
            for gamma in (0.05, 0.2):
                variants[f"a{alpha}g{gamma}"] = ModelSettings(alpha=alpha, gamma=gamma)
        variants["noclip"] = ModelSettings(clip=1e9)
        variants["nodamp"] = ModelSettings(phi=1.0)
    stream = StreamForecast(args.season_s or None, args.horizon, args.every)
    totals = {name: [] for name in variants}
    print(f"{'file':42} {'model':10} {'relMAE':>7} {'sMAPE':>7} {'cover':>6} {'us/r':>6} {'bytes':>7}")
    for s in series:
        for column in range(len(s.metrics)):
            values = s.values[:, column].tolist()
            name = f"{s.name}/{s.metrics[column]}" if len(s.metrics) > 1 else s.name
            for label, model in variants.items():
                tally = Tally(args.horizon, 0.9)
                run_series(tally, s.timestamps.tolist(), values, stream, model, 0.9)
                r = tally.summary()
                rel = r["mae"] / r["baseline_mae"] if r["baseline_mae"] else float("nan")
                totals[label].append((rel, r["coverage"] or 0.0))
                print(f"{name[:42]:42} {label:10} {rel:7.3f} {r['smape'] or 0:7.2f} "
                      f"{r['coverage'] or 0:6.3f} {r['us_per_reading']:6.1f} "
                      f"{r['state_bytes_per_stream']:7d}", flush=True)
            if args.river:
                from river import time_series

                step = float(sorted(
                    b - a for a, b in zip(s.timestamps[:50], s.timestamps[1:51], strict=True) if b > a)[10])
                season = max(2, round(args.season_s / step))
                for label, make in (
                        ("river_hw", lambda m=season: time_series.HoltWinters(
                            alpha=0.2, beta=0.01, gamma=0.1, seasonality=m)),
                        ("snarimax", lambda m=season: time_series.SNARIMAX(
                            p=2, d=1, q=1, m=m, sp=1, sd=0, sq=1))):
                    r = river_run(make, values, season, args.horizon, args.every)
                    totals.setdefault(label, []).append((r["rel_mae"], float("nan")))
                    print(f"{name[:42]:42} {label:10} {r['rel_mae']:7.3f} {r['smape'] or 0:7.2f} "
                          f"{'':>6} {r['us']:6.1f} {r['bytes']:7d}", flush=True)
    print("\nmedian MAE / seasonal-naive MAE over files (below 1 beats the baseline):")
    for label, found in totals.items():
        rels = sorted(r for r, _ in found if math.isfinite(r))
        wins = sum(r < 1 for r in rels)
        print(f"  {label:10} median {rels[len(rels) // 2]:.3f}  beats naive on {wins}/{len(rels)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
