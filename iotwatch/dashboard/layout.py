"""The page: service cards, filters, firing alerts, the streams' charts, history tables.

Element ids are the contract with ``callbacks`` (and with the browser test): each is a
constant here.

>>> table([{"stream": "s/d/m", "score": 0.97}], ["stream", "score"], "none", "t").children[1]\\
...     .children[0].children[1].children
'0.97'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from iotwatch.dashboard.figures import format_cell
from iotwatch.dashboard.services import ServiceStatus

REFRESH = "refresh"
SITE, DEVICE, METRIC, WINDOW = "filter-site", "filter-device", "filter-metric", "filter-window"
SERVICES = "services"
FIRING = "firing"
STREAMS_GRAPH = "streams-graph"
STREAMS_TABLE = "streams-table"
HISTORY = "alert-history"
DEAD_LETTERS = "dead-letters"
THROUGHPUT = "throughput"
SOURCE = "source"

WRAPPED = {"text", "detail", "topic"}
WINDOWS = {"15 min": 900, "1 h": 3600, "6 h": 21_600, "24 h": 86_400, "7 d": 604_800}
DEFAULT_WINDOW = 3600

STYLE = {
    "page": {"fontFamily": "system-ui, sans-serif", "margin": "0 auto", "maxWidth": "1400px",
             "padding": "12px 20px", "color": "#222"},
    "row": {"display": "flex", "gap": "12px", "flexWrap": "wrap", "alignItems": "stretch"},
    "card": {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "8px 12px",
             "minWidth": "220px", "background": "#fafafa"},
    "filter": {"minWidth": "220px", "flex": "1"},
    "table": {"borderCollapse": "collapse", "fontSize": "13px", "width": "100%"},
    "cell": {"borderBottom": "1px solid #eee", "padding": "3px 8px", "textAlign": "left",
             "verticalAlign": "top"},
    "nowrap": {"whiteSpace": "nowrap"},
    "firing": {"color": "#d62728", "fontWeight": "bold"},
    "section": {"marginTop": "14px"},
}
STATE_COLORS = {"ok": "#2ca02c", "degraded": "#ff7f0e", "unreachable": "#d62728",
                "not configured": "#999"}


def page(source: str, refresh_ms: int) -> html.Div:
    """The whole page; the callbacks fill it on the first tick."""
    return html.Div(style=STYLE["page"], children=[
        dcc.Interval(id=REFRESH, interval=refresh_ms, n_intervals=0),
        html.Div(style={**STYLE["row"], "justifyContent": "space-between"}, children=[
            html.H2("iotwatch", style={"margin": "4px 0"}),
            html.Div(f"points from {source}", id=SOURCE,
                     style={"color": "#666", "alignSelf": "center", "fontSize": "13px"}),
        ]),
        html.Div(id=SERVICES, style=STYLE["row"]),
        html.Div(style={**STYLE["row"], **STYLE["section"]}, children=[
            _filter(SITE, "site"), _filter(DEVICE, "device"), _filter(METRIC, "metric"),
            html.Div(style={"minWidth": "160px"}, children=[
                html.Label("window (ending at the newest reading)", style={"fontSize": "12px"}),
                dcc.Dropdown(id=WINDOW, options=[{"label": k, "value": v}
                                                 for k, v in WINDOWS.items()],
                             value=DEFAULT_WINDOW, clearable=False)]),
        ]),
        _section("Firing now", html.Div(id=FIRING)),
        _section("Streams: value, anomaly score and threshold (drag to zoom, double-click to "
                 "reset)", dcc.Graph(id=STREAMS_GRAPH, config={"displaylogo": False})),
        _section("Alert history", html.Div(id=HISTORY)),
        html.Div(style=STYLE["row"], children=[
            html.Div(style={"flex": "1", "minWidth": "480px", "overflowX": "auto"}, children=[
                _section("Detector's streams", html.Div(id=STREAMS_TABLE))]),
            html.Div(style={"flex": "1", "minWidth": "420px", "overflowX": "auto"}, children=[
                _section("Dead letters (rejected messages)", html.Div(id=DEAD_LETTERS))]),
        ]),
        _section("Throughput", dcc.Graph(id=THROUGHPUT, config={"displaylogo": False})),
    ])


def _filter(element_id: str, label: str) -> html.Div:
    return html.Div(style=STYLE["filter"], children=[
        html.Label(label, style={"fontSize": "12px"}),
        dcc.Dropdown(id=element_id, options=[], value=[], multi=True,
                     placeholder=f"every {label}")])


def _section(title: str, body: Any) -> html.Div:
    return html.Div(style=STYLE["section"], children=[
        html.H4(title, style={"margin": "6px 0"}), body])


def service_cards(statuses: Sequence[ServiceStatus]) -> list[html.Div]:
    """One card per service: state, problems, a few live numbers."""
    cards = []
    for status in statuses:
        state = status.state
        numbers = [f"{name} {value:,.1f}" for name, value in status.rates.items()]
        for key in ("streams", "queue_depth", "spool_points"):
            if key in status.health:
                numbers.append(f"{key.replace('_', ' ')} {status.health[key]}")
        cards.append(html.Div(style=STYLE["card"], id=f"service-{status.name}", children=[
            html.Div([html.B(status.name), " ",
                      html.Span(state, className=f"state state-{state.replace(' ', '-')}",
                                style={"color": STATE_COLORS.get(state, "#222"),
                                       "fontWeight": "bold"})]),
            html.Div(status.url or "no URL given", style={"fontSize": "11px", "color": "#888"}),
            html.Div(" | ".join(numbers), style={"fontSize": "12px"}),
            *[html.Div(problem, style={"fontSize": "12px", "color": "#d62728"})
              for problem in status.problems[:3]],
        ]))
    return cards


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty_text: str,
          element_class: str) -> html.Table | html.Div:
    """A plain table of ``rows``; ``empty_text`` when there are none."""
    if not rows:
        return html.Div(empty_text, className=f"{element_class} empty",
                        style={"color": "#888", "fontSize": "13px"})
    head = html.Thead(html.Tr([html.Th(c, style=STYLE["cell"]) for c in columns]))
    # Stream names and times stay on one line; free text (summaries, details) wraps.
    body = html.Tbody([html.Tr([html.Td(format_cell(row.get(c)), style={
        **STYLE["cell"], **(STYLE["nowrap"] if c not in WRAPPED else {}),
        **(STYLE["firing"] if row.get(c) == "firing" else {})})
        for c in columns], className=f"{element_class}-row") for row in rows])
    return html.Table([head, body], className=element_class, style=STYLE["table"])
