"""Draw docs/forecasting.png: a stream, its forecast band one hour ahead, and an early warning.

    python scripts/forecast_plot.py [--out docs/forecasting.png]

The stream is generated here (a daily cycle with noise, then a slow rise towards a
limit), fed reading by reading to the detector's own forecaster and early-warning
machine, exactly as the detector service does.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.forecast.settings import ForecastSettings  # noqa: E402
from detector.forecast.streams import StreamForecasts  # noqa: E402

STEP_S, DAYS, HORIZON, LIMIT = 300.0, 5, 12, 28.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/forecasting.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = ForecastSettings.model_validate({
        "enabled": True, "horizon": HORIZON, "every": 1,
        "warnings": [{"match": "#", "limit": LIMIT, "within_s": HORIZON * STEP_S,
                      "rule": "too_hot"}]})
    forecasts, noise = StreamForecasts(settings), random.Random(4)
    n = int(DAYS * 86400 / STEP_S)
    rise_from = n - 200
    ts = [1.7e9 + i * STEP_S for i in range(n)]
    values = [22 + 4 * math.sin(2 * math.pi * (t % 86400) / 86400) + noise.gauss(0, 0.3)
              + (0.06 * (i - rise_from) if i > rise_from else 0.0) for i, t in enumerate(ts)]
    ahead: dict[float, tuple[float, float, float]] = {}   # target time -> h=HORIZON forecast
    warned = []
    for t, v in zip(ts, values, strict=True):
        lines, alerts = forecasts.observe("plant", "boiler", "temp", t, v)
        for line in lines:
            fields, stamp = line.split(" ")[1:]
            parts = dict(f.split("=") for f in fields.split(","))
            if parts["step"] == f"{HORIZON}i":
                ahead[int(stamp) / 1000] = (float(parts["forecast"]), float(parts["lower"]),
                                            float(parts["upper"]))
        warned += [(t, a) for a in alerts if a.state == "firing"]
    hours = [(t - ts[0]) / 3600 for t in ts]
    targets = sorted(t for t in ahead if t <= ts[-1])
    x = [(t - ts[0]) / 3600 for t in targets]
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.plot(hours, values, lw=0.8, color="black", label="reading")
    ax.plot(x, [ahead[t][0] for t in targets], lw=1, color="tab:blue",
            label=f"forecast made {HORIZON * STEP_S / 3600:g} h before")
    ax.fill_between(x, [ahead[t][1] for t in targets], [ahead[t][2] for t in targets],
                    color="tab:blue", alpha=0.2, label="90% prediction interval")
    ax.axhline(LIMIT, color="tab:red", ls="--", lw=1, label=f"limit {LIMIT:g}")
    first_above = next(t for t, v in zip(ts, values, strict=True) if v > LIMIT)
    for t, _alert in warned:
        ax.axvline((t - ts[0]) / 3600, color="orange", lw=1.5)
        ax.annotate(f"early warning, {(first_above - t) / 60:.0f} min before the limit",
                    ((t - ts[0]) / 3600, LIMIT + 0.6), color="darkorange", ha="right")
    ax.set_xlabel("hours")
    ax.set_ylabel("temp")
    ax.set_title("Online Holt-Winters forecast (daily season learnt from day 1) and an "
                 "early warning before the limit")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    crossing = next(hours[i] for i, v in enumerate(values) if v > LIMIT)
    print(f"wrote {args.out}; warned at {(warned[0][0] - ts[0]) / 3600:.2f} h, first reading "
          f"above {LIMIT:g} at {crossing:.2f} h" if warned else f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
