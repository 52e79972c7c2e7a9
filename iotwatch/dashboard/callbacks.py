"""What refreshes when: every tick of the timer, and whenever a filter changes.

    filters   the stream list (store and detector)   -> site, device, metric choices
    services  /health, /metrics, /streams, /alerts   -> cards, firing now, dead letters
    points    the point store                        -> charts, alert history, throughput

A store or service that cannot be read shows its reason on the page; a callback never
raises (an exception would be a console error and a blank panel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from dash import Dash, Input, Output, html

from iotwatch.dashboard import figures, layout
from iotwatch.dashboard.deadletters import DeadLetterTail
from iotwatch.dashboard.services import AlertingApi, DetectorApi
from iotwatch.dashboard.sources import PointSource, Selection, SourceError

log = logging.getLogger(__name__)

FILTERS = [Input(layout.SITE, "value"), Input(layout.DEVICE, "value"),
           Input(layout.METRIC, "value")]


@dataclass
class Readers:
    """Everything the page reads from."""

    points: PointSource
    detector: DetectorApi
    alerting: AlertingApi
    dead_letters: DeadLetterTail | None = None


def selection_of(sites: Sequence[str] | None, devices: Sequence[str] | None,
                 metrics: Sequence[str] | None, window_s: float | None = None) -> Selection:
    """The filters' values as a ``Selection`` (None and [] both mean every one).

    >>> selection_of(["a"], None, [], 900)
    Selection(sites=('a',), devices=(), metrics=(), window_s=900.0)
    """
    return Selection(tuple(sites or ()), tuple(devices or ()), tuple(metrics or ()),
                     float(window_s or layout.DEFAULT_WINDOW))


def register(app: Dash, readers: Readers) -> None:
    @app.callback(Output(layout.SITE, "options"), Output(layout.DEVICE, "options"),
                  Output(layout.METRIC, "options"), Input(layout.REFRESH, "n_intervals"),
                  *FILTERS)
    def filters(_tick: int, sites: list[str] | None, devices: list[str] | None,
                _metrics: list[str] | None) -> tuple[list[str], list[str], list[str]]:
        known = _known_streams(readers)
        chosen_sites = [k for k in known if not sites or k[0] in sites]
        chosen_devices = [k for k in chosen_sites if not devices or k[1] in devices]
        return (sorted({k[0] for k in known}), sorted({k[1] for k in chosen_sites}),
                sorted({k[2] for k in chosen_devices}))

    @app.callback(Output(layout.SERVICES, "children"), Output(layout.FIRING, "children"),
                  Output(layout.DEAD_LETTERS, "children"),
                  Output(layout.STREAMS_TABLE, "children"),
                  Input(layout.REFRESH, "n_intervals"), *FILTERS)
    def services(_tick: int, sites: list[str] | None, devices: list[str] | None,
                 metrics: list[str] | None) -> tuple[Any, ...]:
        selection = selection_of(sites, devices, metrics)
        detector, alerting = readers.detector.status(), readers.alerting.status()
        streams = readers.detector.streams() if detector.reachable else None
        chosen = None if streams is None else {
            k: s for k, s in streams.items()
            if selection.matches(s["site"], s["device"], s["metric"])}
        alerts, problem = _read(lambda: readers.points.alerts(selection), figures.empty_alerts)
        held = readers.alerting.alerts() if alerting.reachable else None
        firing = figures.firing_rows(chosen, alerts, held)
        return (layout.service_cards([detector, alerting]),
                layout.table(firing, ["stream", "since", "value", "score", "receivers",
                                      "muted"], problem or "nothing is firing", "firing-table"),
                _dead_letters(readers, [detector, alerting], selection),
                layout.table(figures.stream_rows(streams, selection),
                             ["stream", "readings", "value", "score", "state", "episodes"],
                             "detector not reachable" if streams is None else "no streams yet",
                             "streams-table"))

    @app.callback(Output(layout.STREAMS_GRAPH, "figure"), Output(layout.HISTORY, "children"),
                  Output(layout.THROUGHPUT, "figure"), Input(layout.REFRESH, "n_intervals"),
                  *FILTERS, Input(layout.WINDOW, "value"))
    def points(_tick: int, sites: list[str] | None, devices: list[str] | None,
               metrics: list[str] | None, window_s: float | None) -> tuple[Any, ...]:
        selection = selection_of(sites, devices, metrics, window_s)
        readings, problem = _read(lambda: readers.points.readings(selection),
                                  lambda: pd.DataFrame())
        alerts, _ = _read(lambda: readers.points.alerts(selection), figures.empty_alerts)
        bands, _ = _read(lambda: readers.points.bands(selection), lambda: None)
        stats, _ = _read(readers.points.service_stats, lambda: pd.DataFrame())
        figure = figures.stream_figure(readings, alerts, bands=bands, revision=repr(selection))
        if problem:
            figure.add_annotation(text=problem, showarrow=False, x=0.5, y=1.0, xref="paper",
                                  yref="paper", font={"color": "#d62728"})
        shown = readings.groupby(["site", "device", "metric"]).ngroups \
            if not readings.empty else 0
        history = figures.history_rows(alerts)
        note = [] if shown <= figures.MAX_STREAM_PLOTS else [html.Div(
            f"{figures.MAX_STREAM_PLOTS} of {shown} streams drawn: filter to see the others",
            style={"color": "#888", "fontSize": "12px"})]
        return (figure,
                [*note, layout.table(history, ["time", "state", "severity", "stream", "score",
                                               "text"], problem or "no alerts yet",
                                     "history-table")],
                figures.throughput_figure(stats))


def _dead_letters(readers: Readers, statuses, selection: Selection) -> list[Any]:
    """Counts by reason (the services' counters), then the newest letters when the broker
    is followed; letters about a reading obey the filters."""
    parts = [layout.table(figures.dead_letter_rows(statuses), ["service", "reason", "count"],
                          "none", "dead-letter-table")]
    if readers.dead_letters is not None:
        rows = [row for row in readers.dead_letters.rows() if _letter_selected(row, selection)]
        parts += [html.Div("newest, since the page's server started", style={
                      "fontSize": "12px", "color": "#666", "marginTop": "8px"}),
                  layout.table(rows[:20], ["ts", "service", "reason", "topic", "detail"],
                               "none yet", "dead-letter-list")]
    return parts


def _letter_selected(row: dict[str, Any], selection: Selection) -> bool:
    levels = row.get("topic", "").split("/")
    if len(levels) >= 5 and levels[-4] == "readings":
        return selection.matches(*levels[-3:])
    return True     # not about one stream (or a per-device message): always shown


def _known_streams(readers: Readers) -> set[tuple[str, str, str]]:
    known: set[tuple[str, str, str]] = set()
    streams, _ = _read(readers.points.streams, lambda: pd.DataFrame())
    if not streams.empty:
        known |= set(zip(streams["site"], streams["device"], streams["metric"], strict=True))
    for s in (readers.detector.streams() or {}).values():
        known.add((s["site"], s["device"], s["metric"]))
    return known


def _read(read, fallback) -> tuple[Any, str | None]:
    """``read()``, or the fallback and the reason when the store cannot be read."""
    try:
        return read(), None
    except SourceError as exc:
        return fallback(), str(exc)
    except Exception as exc:  # a bad point must cost a panel, not the page
        log.exception("dashboard: reading failed")
        return fallback(), f"cannot read: {exc}"
