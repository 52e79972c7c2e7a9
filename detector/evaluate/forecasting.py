"""Forecast accuracy in ``iotwatch evaluate``: every metric of every file, online.

The same forecaster and settings as the detector service (``detector.forecast`` of the
``--config`` file; ``enabled`` is ignored here: every stream is measured), scored against
the seasonal-naive forecast on the same points (see ``detector.forecast.accuracy``).
The summary is pooled over every scored point of every file; ``files`` has each file's.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> parser.parse_args(["--season-s", "0", "--horizon", "6"]).horizon
6
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used, so ``iotwatch --help`` stays fast
    from detector.evaluate.datasets import Series
    from detector.forecast.settings import ForecastSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--horizon", type=int, metavar="N",
                        help="forecast horizon in readings (default: detector.forecast.horizon)")
    parser.add_argument("--season-s", type=float, metavar="S",
                        help="season of the forecasts in seconds, 0 for none "
                        "(default: detector.forecast.season_s, one day)")
    parser.add_argument("--no-forecast", action="store_true",
                        help="skip the forecast accuracy part")


def settings_for(section: Any, args: argparse.Namespace) -> ForecastSettings | None:
    """The forecast settings: the config's, with ``--horizon``/``--season-s`` applied."""
    from detector.forecast.settings import ForecastSettings

    if getattr(args, "no_forecast", False):
        return None
    settings = getattr(section, "forecast", None) or ForecastSettings()
    update: dict[str, Any] = {"enabled": True}
    if getattr(args, "horizon", None) is not None:
        if args.horizon < 1:
            raise ValueError(f"--horizon must be >= 1, got {args.horizon}")
        update["horizon"] = args.horizon
    if getattr(args, "season_s", None) is not None:
        if args.season_s < 0:
            raise ValueError(f"--season-s must be >= 0, got {args.season_s}")
        update["season_s"] = args.season_s
    # Rules may set their own horizons; the summary needs one, so the default wins here.
    rules = [rule.model_copy(update={"horizon": None}) for rule in settings.streams]
    return settings.model_copy(update={**update, "streams": rules})


def forecast_summary(series: Sequence[Series], settings: ForecastSettings) -> dict[str, Any]:
    """The ``forecast`` key of the ``--json`` summary."""
    from detector.forecast.accuracy import Tally, run_series
    from detector.forecast.settings import StreamForecast, resolve

    total = Tally(settings.horizon, settings.interval)
    files: dict[str, Any] = {}
    for item in series:
        tally = Tally(settings.horizon, settings.interval)
        timestamps = item.timestamps.tolist()
        for column, metric in enumerate(item.metrics):
            stream = resolve(settings.model_copy(update={"enabled": True}),
                             f"{item.site}/{item.device}/{metric}")
            stream = stream or StreamForecast(settings.season_s or None, settings.horizon,
                                              settings.every)
            run_series(tally, timestamps, item.values[:, column].tolist(), stream,
                       settings.model, settings.interval)
        found = tally.summary()
        files[item.source or item.key] = {k: found[k] for k in (
            "points", "mae", "smape", "coverage", "baseline_mae", "baseline_smape")}
        total.merge(tally)
    summary = total.summary()
    summary["season_s"] = settings.season_s or None
    summary["every"] = settings.every
    ratios = [f["mae"] / f["baseline_mae"] for f in files.values()
              if f["points"] and f["baseline_mae"]]
    summary["files_beating_baseline"] = sum(r < 1 for r in ratios)
    summary["files_scored"] = len(ratios)
    summary["median_mae_ratio"] = sorted(ratios)[len(ratios) // 2] if ratios else None
    summary["files"] = files
    return summary


def format_forecast(summary: dict[str, Any]) -> str:
    """One line for the CLI, after the detection table."""
    if not summary["points"]:
        return (f"forecast: no point scored (horizon {summary['horizon']} readings; "
                f"a season of {summary['season_s']} s needs a whole season of readings first)")

    def num(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    return (f"forecast h=1..{summary['horizon']} ({summary['points']:,} points): "
            f"MAE {num(summary['mae'])} vs seasonal naive {num(summary['baseline_mae'])}, "
            f"sMAPE {num(summary['smape'])}% vs {num(summary['baseline_smape'])}%, "
            f"{summary['interval']:.0%} interval coverage {num(summary['coverage'])}, "
            f"beats naive on {summary['files_beating_baseline']}/{summary['files_scored']} "
            f"files (median MAE ratio {num(summary['median_mae_ratio'])}), "
            f"{num(summary['us_per_reading'], 2)} us/reading, "
            f"{summary['state_bytes_per_stream']} B/stream")
