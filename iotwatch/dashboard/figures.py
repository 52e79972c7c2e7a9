"""Plotly figures and table rows from the sources' frames and the services' answers (pure).

>>> import pandas as pd
>>> readings = pd.DataFrame({
...     "time": pd.to_datetime([0, 1000, 2000], unit="ms", utc=True),
...     "site": "s", "device": "d", "metric": "m", "value": [1.0, 9.0, 1.0],
...     "score": [0.1, 0.9, 0.2], "threshold": 0.65, "anomaly": [0, 1, 0]})
>>> figure = stream_figure(readings, empty_alerts(), revision="all")
>>> [trace.name for trace in figure.data]
['value', 'anomalous', 'score', 'threshold']
>>> figure.layout.uirevision
'all'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from iotwatch.dashboard.services import ServiceStatus
from iotwatch.dashboard.sources import ALERT_COLUMNS, BAND_COLUMNS, empty

MAX_STREAM_PLOTS = 12
ROW_HEIGHT_PX = 165
VALUE, SCORE, THRESHOLD, ALERT, BAND = "#1f77b4", "#9467bd", "#d62728", "#d62728", "#ff7f0e"
STAT_FIELDS = {"readings_in": "readings in", "points_written": "points written",
               "rejected": "rejected"}


def empty_alerts() -> pd.DataFrame:
    return empty(ALERT_COLUMNS)


def stream_name(site: str, device: str, metric: str) -> str:
    return f"{site}/{device}/{metric}"


def stream_figure(readings: pd.DataFrame, alerts: pd.DataFrame, *, revision: str,
                  bands: pd.DataFrame | None = None,
                  max_streams: int = MAX_STREAM_PLOTS) -> go.Figure:
    """One row per stream: value (left axis) with anomalous readings marked, forecast band
    when there is one, score and threshold (right axis, 0-1), alert transitions as lines.

    ``revision`` keeps the user's zoom across refreshes until the selection changes.
    """
    groups = list(readings.groupby(["site", "device", "metric"], sort=True)) \
        if not readings.empty else []
    shown = groups[:max_streams]
    rows = max(len(shown), 1)
    figure = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.35 / rows,
                           specs=[[{"secondary_y": True}]] * rows,
                           subplot_titles=[stream_name(*key) for key, _ in shown] or [""])
    bands = bands if bands is not None else empty(BAND_COLUMNS)
    for row, (key, frame) in enumerate(shown, start=1):
        first = row == 1
        band = bands[(bands["site"] == key[0]) & (bands["device"] == key[1])
                     & (bands["metric"] == key[2])] if not bands.empty else bands
        if not band.empty:
            figure.add_trace(go.Scatter(x=band["time"], y=band["upper"], mode="lines",
                                        line={"width": 0}, showlegend=False, hoverinfo="skip",
                                        legendgroup="band"), row=row, col=1)
            figure.add_trace(go.Scatter(x=band["time"], y=band["lower"], mode="lines",
                                        line={"width": 0}, fill="tonexty",
                                        fillcolor="rgba(255,127,14,0.18)", name="forecast band",
                                        legendgroup="band", showlegend=first), row=row, col=1)
        figure.add_trace(go.Scatter(x=frame["time"], y=frame["value"], mode=_mode(frame),
                                    line={"color": VALUE, "width": 1.4}, name="value",
                                    legendgroup="value", showlegend=first), row=row, col=1)
        flagged = frame[frame["anomaly"].fillna(0) > 0]
        figure.add_trace(go.Scatter(x=flagged["time"], y=flagged["value"], mode="markers",
                                    marker={"color": ALERT, "size": 6}, name="anomalous",
                                    legendgroup="anomalous", showlegend=first), row=row, col=1)
        figure.add_trace(go.Scatter(x=frame["time"], y=frame["score"], mode="lines",
                                    line={"color": SCORE, "width": 1}, name="score",
                                    legendgroup="score", showlegend=first, opacity=0.8),
                         row=row, col=1, secondary_y=True)
        figure.add_trace(go.Scatter(x=frame["time"], y=frame["threshold"], mode="lines",
                                    line={"color": THRESHOLD, "width": 1, "dash": "dash"},
                                    name="threshold", legendgroup="threshold",
                                    showlegend=first), row=row, col=1, secondary_y=True)
        for _, alert in _alerts_of(alerts, key, frame["time"].min()).iterrows():
            figure.add_vline(x=alert["time"], row=row, col=1, line_width=1,
                             line_dash="solid" if alert["state"] == "firing" else "dot",
                             line_color=ALERT if alert["state"] == "firing" else "#2ca02c")
        figure.update_yaxes(range=[-0.02, 1.05], tickvals=[0, 0.5, 1], row=row, col=1,
                            secondary_y=True,
                            showgrid=False, title_text="score" if first else None)
    figure.update_layout(height=80 + ROW_HEIGHT_PX * rows, margin={"l": 50, "r": 50, "t": 40,
                                                                   "b": 30},
                         uirevision=revision, hovermode="x unified", template="plotly_white",
                         legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0})
    if not shown:
        figure.add_annotation(text="no readings stored for this selection yet",
                              showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def _mode(frame: pd.DataFrame) -> str:
    # A line needs two points: a stream just started would otherwise be invisible.
    return "lines" if len(frame) > 3 else "lines+markers"


def _alerts_of(alerts: pd.DataFrame, key: tuple[str, str, str], since: Any) -> pd.DataFrame:
    if alerts.empty:
        return alerts
    chosen = alerts[(alerts["site"] == key[0]) & (alerts["device"] == key[1])
                    & (alerts["metric"] == key[2])]
    return chosen[chosen["time"] >= since]


def throughput_figure(stats: pd.DataFrame) -> go.Figure:
    """Per-second rates of the services' counters (the ``iotwatch_service`` points)."""
    figure = go.Figure()
    for service, frame in (stats.groupby("service") if not stats.empty else []):
        frame = frame.sort_values("time")
        seconds = frame["time"].diff().dt.total_seconds()
        for column, label in STAT_FIELDS.items():
            if column not in frame or frame[column].isna().all():
                continue
            rate = (frame[column].astype(float).diff() / seconds).clip(lower=0)
            figure.add_trace(go.Scatter(x=frame["time"], y=rate, mode=_mode(frame),
                                        name=f"{service}: {label}/s"))
    figure.update_layout(height=240, margin={"l": 50, "r": 20, "t": 10, "b": 30},
                         template="plotly_white", uirevision="throughput",
                         legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    if not figure.data:
        figure.add_annotation(text="no service counters stored yet", showarrow=False,
                              x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def firing_rows(streams: dict[str, dict[str, Any]] | None, alerts: pd.DataFrame,
                held: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The alerts firing now: the detector's live states (its alert history when the
    detector cannot be reached), with the alerting service's receivers and silences.

    >>> firing_rows({"s/d/m": {"site": "s", "device": "d", "metric": "m", "value": 9.0,
    ...              "score": 0.97, "alert_state": "firing", "fingerprint": "f1"}},
    ...             empty_alerts(), [{"fingerprint": "f1", "receivers": ["ops"],
    ...                               "silenced_by": []}])[0]["receivers"]
    'ops'
    """
    rows = []
    if streams is not None:
        for key, s in sorted(streams.items()):
            if s.get("alert_state") == "firing":
                rows.append({"stream": key, "site": s["site"], "device": s["device"],
                             "metric": s["metric"], "value": s.get("value"),
                             "score": s.get("score"), "fingerprint": s.get("fingerprint")})
    elif not alerts.empty:
        latest = alerts.sort_values("time").groupby(["site", "device", "metric"]).tail(1)
        for _, a in latest[latest["state"] == "firing"].iterrows():
            rows.append({"stream": stream_name(a["site"], a["device"], a["metric"]),
                         "site": a["site"], "device": a["device"], "metric": a["metric"],
                         "value": a["value"], "score": a["score"],
                         "fingerprint": a["fingerprint"]})
    held_by = {a.get("fingerprint"): a for a in held or []}
    for row in rows:
        since = _firing_since(alerts, row)
        row["since"] = since.strftime("%Y-%m-%d %H:%M:%S") if since is not None else ""
        found = held_by.get(row["fingerprint"], {})
        row["receivers"] = ", ".join(found.get("receivers") or [])
        row["muted"] = ", ".join((found.get("silenced_by") or [])
                                 + (found.get("inhibited_by") or []))
    return rows


def _firing_since(alerts: pd.DataFrame, row: dict[str, Any]) -> pd.Timestamp | None:
    if alerts.empty:
        return None
    chosen = alerts[(alerts["site"] == row["site"]) & (alerts["device"] == row["device"])
                    & (alerts["metric"] == row["metric"]) & (alerts["state"] == "firing")]
    return None if chosen.empty else chosen["time"].max()


def history_rows(alerts: pd.DataFrame, limit: int = 50) -> list[dict[str, Any]]:
    """Alert transitions, newest first."""
    if alerts.empty:
        return []
    rows = []
    for _, a in alerts.sort_values("time", ascending=False).head(limit).iterrows():
        rows.append({"time": a["time"].strftime("%Y-%m-%d %H:%M:%S"), "state": a["state"],
                     "severity": a["severity"],
                     "stream": stream_name(a["site"], a["device"], a["metric"]),
                     "score": a["score"], "text": a["text"]})
    return rows


def dead_letter_rows(services: Iterable[ServiceStatus]) -> list[dict[str, Any]]:
    """Rejected messages per service and reason (the services' ``*_rejected_total``)."""
    rows = []
    for status in services:
        for (name, labels), value in sorted(status.counters.items()):
            if name.endswith("rejected_total") and value > 0:
                rows.append({"service": status.name, "reason": dict(labels).get("reason", "-"),
                             "count": int(value)})
    return rows


def stream_rows(streams: dict[str, dict[str, Any]] | None,
                selected: Any = None) -> list[dict[str, Any]]:
    """The detector's view of each stream (``/streams``), those the filter selects."""
    rows = []
    for key, s in sorted((streams or {}).items()):
        if selected is not None and not selected.matches(s["site"], s["device"], s["metric"]):
            continue
        rows.append({"stream": key, "readings": s.get("count"), "value": s.get("value"),
                     "score": s.get("score"), "threshold": s.get("threshold"),
                     "state": s.get("alert_state"), "episodes": s.get("episodes")})
    return rows


def format_cell(value: Any) -> str:
    """Table text: floats to 4 significant digits, None as a dash.

    >>> format_cell(0.123456), format_cell(None), format_cell(12)
    ('0.1235', '-', '12')
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
