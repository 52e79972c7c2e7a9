r"""Every InfluxQL query of the provisioned Grafana dashboard, run against a real InfluxDB 1.x.

Grafana substitutes ``$timeFilter``, ``$__interval`` and the template variables before the
query reaches InfluxDB; the helpers here do the same, so each query runs verbatim. Data is
written in the schema the detector writes (measurements ``readings``, ``alerts``,
``iotwatch_service``), and each query must return the series a person would expect to see.

>>> substitute('SELECT x FROM r WHERE "site" =~ /^$site$/ AND $timeFilter GROUP BY time($__interval)',
...            {"site": ["plant-a", "plant.b"]}, (1000, 2000), "5s")
'SELECT x FROM r WHERE "site" =~ /^(plant-a|plant\\.b)$/ AND time >= 1000ms and time <= 2000ms GROUP BY time(5s)'
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


@dataclass(frozen=True)
class DashboardQuery:
    key: str          # "variable:site", "annotation:Alerts", "panel:<title>:<refId>"
    query: str
    min_interval_s: int = 0     # the panel's "Min interval": Grafana never groups finer


def interval_for(item: DashboardQuery, base_s: int) -> str:
    """``$__interval`` as Grafana computes it: the base, but not below the panel's minimum."""
    return f"{max(base_s, item.min_interval_s)}s"


def load_dashboard(name: str = "iotwatch.json") -> dict[str, Any]:
    return json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))


def dashboard_queries(dashboard: dict[str, Any]) -> list[DashboardQuery]:
    """Every InfluxQL query in the dashboard: variables, annotations, panel targets."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append(DashboardQuery(f"variable:{variable['name']}", _query_text(variable)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") == "influxdb":
            found.append(DashboardQuery(f"annotation:{annotation['name']}",
                                        _query_text(annotation)))
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            found.append(DashboardQuery(f"panel:{panel['title']}:{target['refId']}",
                                        _query_text(target), _seconds(panel.get("interval"))))
    return found


def substitute(query: str, variables: dict[str, list[str] | None], time_range_ms: tuple[int, int],
               interval: str, texts: dict[str, str] | None = None) -> str:
    """The query as Grafana sends it. A variable set to None means "All" (allValue ``.*``).

    ``texts`` are single-value text variables (the measurement names): Grafana puts their
    value in as it is, without regex escaping.
    """
    start, end = time_range_ms
    text = query.replace("$timeFilter", f"time >= {start}ms and time <= {end}ms")
    text = text.replace("$__interval", interval)
    values_of = {name: ".*" if values is None else "(" + "|".join(map(_regex_escape, values)) + ")"
                 for name, values in variables.items()}
    values_of.update(texts or {})
    for name in sorted(values_of, key=len, reverse=True):
        text = text.replace(f"${name}", values_of[name])
    return text


def text_variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """The dashboard's text variables (name -> default value), e.g. the measurement names."""
    return {v["name"]: v["query"] for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") in ("textbox", "constant")}


def influxql(url: str, database: str, query: str) -> list[dict[str, Any]]:
    """Run one InfluxQL statement over the v1 HTTP API; return its series (error raises)."""
    body = urllib.parse.urlencode({"db": database, "q": query, "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{url.rstrip('/')}/query", data=body, timeout=30) as response:
        answer = json.load(response)
    result = answer["results"][0]
    if "error" in result:
        raise AssertionError(f"InfluxDB rejected {query!r}: {result['error']}")
    return result.get("series", [])


def rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten series into row dicts, each carrying its group-by tags."""
    flat = []
    for one in series:
        for values in one.get("values", []):
            row = dict(one.get("tags") or {})
            row.update(zip(one["columns"], values, strict=True))
            flat.append(row)
    return flat


def _regex_escape(value: str) -> str:
    # Grafana's escaping for InfluxDB regex variables (it leaves '-' alone, unlike re.escape).
    return re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value)


def _query_text(node: dict[str, Any]) -> str:
    query = node.get("query") or (node.get("target") or {}).get("query")
    if isinstance(query, dict):     # newer Grafana stores variable queries as objects
        query = query.get("query")
    if not query:
        raise AssertionError(f"no raw InfluxQL query in {json.dumps(node)[:200]}")
    return query


def _seconds(interval: str | None) -> int:
    if not interval:
        return 0
    match = re.fullmatch(r">?(\d+)([smh])", interval)
    assert match, f"unsupported panel interval {interval!r}"
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def _panels(panels: list[dict[str, Any]]):
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


# ---------------------------------------------------------------------------
# Data in the detector's schema
# ---------------------------------------------------------------------------

STEP_S = 5
POINTS = 120
STREAMS = [("plant-a", "boiler-1", "temperature"), ("plant-a", "boiler-1", "pressure"),
           ("plant-a", "boiler-2", "temperature"), ("plant-a", "boiler-2", "pressure"),
           ("plant-b", "pump-1", "power")]
FAULTY = ("plant-a", "boiler-1", "temperature")
ANOMALOUS = range(60, 70)           # indexes of the faulty stream's anomalous readings
FIRED_AT, RESOLVED_AT = 62, 75
WARNED_AT = 50                      # an early warning of the faulty stream
FORECAST_AT = range(100, 120)       # forecast points of the faulty stream
READINGS_PER_STEP = len(STREAMS)    # readings_in grows by this each step: 1 reading/s
REJECTED_PER_STEP = 1


@dataclass(frozen=True)
class SchemaData:
    database: str
    start_ms: int
    end_ms: int


def schema_lines(start_s: int, measurement: str = "readings",
                 alert_measurement: str = "alerts",
                 forecast_measurement: str = "forecasts",
                 summary_measurement: str = "summaries") -> list[str]:
    """Line protocol for POINTS steps of every stream, one fault, its alert and the counters."""
    lines = []
    for i in range(POINTS):
        ts_ns = (start_s + i * STEP_S) * 1_000_000_000
        for stream in STREAMS:
            site, device, metric = stream
            anomalous = stream == FAULTY and i in ANOMALOUS
            score = 0.95 if anomalous else 0.1
            lines.append(
                f"{measurement},site={site},device={device},metric={metric} "
                f"value={20.0 + i % 7 + (15 if anomalous else 0)},score={score},threshold=0.8,"
                f"anomaly={1 if anomalous else 0}i,score_zscore={score * 4},score_hst={score} {ts_ns}")
        if i == 0:
            for stream in STREAMS:
                faulty = int(stream == FAULTY)
                tags = f"site={stream[0]},device={stream[1]},metric={stream[2]}"
                for period in ("hour", "day"):
                    lines.append(
                        f"{summary_measurement},{tags},period={period} mean=23.0,min=20.0,"
                        f"max={26 + 15 * faulty}.0,count=720i,anomalies={10 * faulty}i,"
                        f"alerts={faulty}i,late=0i {ts_ns}")
        site, device, metric = FAULTY
        if i in FORECAST_AT:
            lines.append(f"{forecast_measurement},site={site},device={device},metric={metric} "
                         f"forecast={20.0 + i % 7},lower={18.0 + i % 7},upper={22.0 + i % 7},"
                         f"step=1i {ts_ns}")
        if i == WARNED_AT:
            lines.append(
                f"{alert_measurement},site={site},device={device},metric={metric},"
                f"severity=warning,state=firing fingerprint=\"beef\",value=30.0,score=1.0,"
                f"text=\"{metric} on {site}/{device} will exceed 40 within 30 min: forecast 41 "
                f"at 2026-01-01T00:00:00.000Z (in 25 min)\" {ts_ns}")
        for state, at in (("firing", FIRED_AT), ("resolved", RESOLVED_AT)):
            if i == at:
                site, device, metric = FAULTY
                lines.append(
                    f"{alert_measurement},site={site},device={device},metric={metric},severity=warning,"
                    f"state={state} fingerprint=\"f00d\",value=35.0,score=0.95,"
                    f"text=\"{state}: {device}/{metric} anomalous\" {ts_ns}")
        lines.append(
            f"iotwatch_service,service=detector readings_in={(i + 1) * READINGS_PER_STEP}i,"
            f"rejected={(i + 1) * REJECTED_PER_STEP}i,points_written={(i + 1) * READINGS_PER_STEP}i,"
            f"alerts_fired={int(i >= FIRED_AT)}i,alerts_resolved={int(i >= RESOLVED_AT)}i,"
            f"spool_depth=0i {ts_ns}")
    return lines


def write_lines(url: str, database: str, lines: list[str]) -> None:
    query = urllib.parse.urlencode({"db": database, "precision": "ns"})
    request = urllib.request.Request(f"{url.rstrip('/')}/write?{query}",
                                     data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204, response.read()


# ---------------------------------------------------------------------------
# What each query must show, for a selection of site/device/metric
# ---------------------------------------------------------------------------


def selected(variables: dict[str, list[str] | None]) -> list[tuple[str, str, str]]:
    def keep(name: str, value: str) -> bool:
        return variables.get(name) is None or value in variables[name]
    return [s for s in STREAMS if keep("site", s[0]) and keep("device", s[1]) and keep("metric", s[2])]


def stream_of(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["site"], row["device"], row["metric"]


def check(key: str, series: list[dict[str, Any]], variables: dict[str, list[str] | None]) -> None:
    """Assert that the query named ``key`` returned what its panel is meant to show."""
    streams = selected(variables)
    faulty_selected = FAULTY in streams
    table = rows(series)
    by_stream = {stream_of(s["tags"]) for s in series if s.get("tags", {}).get("metric")}
    values_of = lambda column: [r[column] for r in table if r.get(column) is not None]  # noqa: E731

    if key.startswith("variable:"):
        name = key.split(":", 1)[1]
        index = {"site": 0, "device": 1, "metric": 2}[name]
        scope = {k: v for k, v in variables.items() if k != name and
                 {"site": 0, "device": 1, "metric": 2}[k] < index}
        expected = {s[index] for s in selected(scope)}
        assert {r["value"] for r in table} == expected, key
    elif key.startswith("panel:$metric: value, forecast band, anomaly score and threshold:A"):
        assert by_stream == set(streams), key
        assert len(values_of("value")) == len(table) > 0, key
    elif key.startswith("panel:$metric: value, forecast band, anomaly score and threshold:C"):
        assert by_stream == ({FAULTY} if faulty_selected else set()), key
        assert all(r["lower"] < r["forecast"] < r["upper"] for r in table), key
        assert len(table) == (len(FORECAST_AT) * STEP_S // 10 if faulty_selected else 0), key
    elif key.startswith("panel:$metric: value, forecast band, anomaly score and threshold:B"):
        assert by_stream == set(streams), key
        assert max(values_of("score")) == (0.95 if faulty_selected else 0.1), key
        assert set(values_of("threshold")) == {0.8}, key
    elif key == "panel:Raw detector scores:A":
        assert by_stream == set(streams), key
        assert values_of("max_score_zscore") and values_of("max_score_hst"), key
    elif key == "panel:Anomalous readings:A":
        assert by_stream == set(streams), key
        total = {s: sum(r["anomalous"] for r in table if stream_of(r) == s) for s in streams}
        assert total == {s: len(ANOMALOUS) if s == FAULTY else 0 for s in streams}, key
    elif key == "panel:Alerts:A":
        assert sorted(r["state"] for r in table) == (["firing", "firing", "resolved"]
                                                      if faulty_selected else []), key
        assert all(r["text"] and r["fingerprint"] in ("f00d", "beef") for r in table), key
    elif key == "panel:Alerts in range:A":
        counts = {s["tags"]["state"]: s["values"][0][1] for s in series}
        assert counts == ({"firing": 2, "resolved": 1} if faulty_selected else {}), key
    elif key == "panel:Ingestion rate:A":
        assert _rates(table, "readings in") == {READINGS_PER_STEP / STEP_S}, key
        assert _rates(table, "points written") == {READINGS_PER_STEP / STEP_S}, key
    elif key == "panel:Rejections:A":
        assert _rates(table, "rejected") == {REJECTED_PER_STEP / STEP_S}, key
    elif key == "panel:Alert and spool activity:A":
        assert {r["service"] for r in table} == {"detector"}, key
        assert max(values_of("alerts fired")) > 0 and max(values_of("alerts resolved")) > 0, key
    elif key == "panel:Alert and spool activity:B":
        assert set(values_of("spool depth")) == {0}, key
    elif key == "annotation:Anomalies":
        assert len(table) == (len(ANOMALOUS) if faulty_selected else 0), key
        assert all(stream_of(r) == FAULTY and r["score"] > 0.8 for r in table), key
    elif key == "annotation:Alerts":
        assert len(table) == (3 if faulty_selected else 0), key
        assert all(r["text"] and r["state"] in ("firing", "resolved") for r in table), key
    elif key == "panel:Hourly mean, min and max:A":
        assert by_stream == set(streams), key
        assert {stream_of(r): r["max"] for r in table} == {
            s: 41.0 if s == FAULTY else 26.0 for s in streams}, key
    elif key == "panel:Daily summaries:A":
        assert {stream_of(r): (r["count"], r["anomalies"], r["alerts"]) for r in table} == {
            s: (720, 10, 1) if s == FAULTY else (720, 0, 0) for s in streams}, key
    elif key == "annotation:Early warnings":
        assert len(table) == (1 if faulty_selected else 0), key
        assert all("will exceed 40" in r["text"] and r["state"] == "firing" for r in table), key
    else:
        raise AssertionError(f"no expectation for dashboard query {key}: add one to check()")


def _rates(table: list[dict[str, Any]], column: str) -> set[float]:
    return {round(r[column], 6) for r in table if r.get(column) is not None}


SELECTIONS = [
    pytest.param({"site": None, "device": None, "metric": None}, id="all"),
    pytest.param({"site": ["plant-a"], "device": ["boiler-1"], "metric": ["temperature"]},
                 id="faulty-stream"),
    pytest.param({"site": ["plant-a"], "device": None, "metric": ["pressure"]}, id="one-metric"),
    pytest.param({"site": ["plant-b"], "device": None, "metric": None}, id="other-site"),
]


def test_dashboard_has_the_panels_operators_need():
    keys = {q.key for q in dashboard_queries(load_dashboard())}
    assert {"variable:site", "variable:device", "variable:metric", "annotation:Anomalies",
            "annotation:Alerts", "panel:Alerts:A", "panel:Ingestion rate:A",
            "panel:Rejections:A"} <= keys


def test_dashboard_datasource_is_the_provisioned_one():
    dashboard = load_dashboard()
    provisioned = (DASHBOARD_DIR.parent / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    uids = {t["datasource"]["uid"] for p in _panels(dashboard["panels"]) for t in p["targets"]}
    assert uids == {"iotwatch-influxdb"}
    assert "uid: iotwatch-influxdb" in provisioned and "version: InfluxQL" in provisioned


@pytest.fixture(scope="module")
def schema_data(influxdb) -> SchemaData:
    database = influxdb.create_database()      # its own database: exact counts
    start_s = (int(time.time()) - POINTS * STEP_S - 60) // 10 * 10
    write_lines(influxdb.url, database, schema_lines(start_s))
    return SchemaData(database, start_ms=start_s * 1000, end_ms=(start_s + POINTS * STEP_S) * 1000)


@pytest.mark.parametrize("variables", SELECTIONS)
def test_every_dashboard_query_returns_the_expected_series(influxdb, schema_data, variables):
    dashboard = load_dashboard()
    for item in dashboard_queries(dashboard):
        query = substitute(item.query, variables, (schema_data.start_ms, schema_data.end_ms),
                           interval_for(item, 10), text_variables(dashboard))
        check(item.key, influxql(influxdb.url, schema_data.database, query), variables)


def test_measurement_names_are_dashboard_variables_defaulting_to_the_detectors():
    from detector.config import DetectorFile

    influx = DetectorFile().influxdb
    assert text_variables(load_dashboard()) == {
        "measurement": influx.measurement, "alert_measurement": influx.alert_measurement,
        "forecast_measurement": DetectorFile().detector.forecast.measurement,
        "summary_measurement": DetectorFile().detector.summaries.measurement}


@pytest.mark.parametrize("variables", SELECTIONS[:2])
def test_dashboard_follows_configured_measurement_names(influxdb, variables):
    """influxdb.measurement / alert_measurement set to other names: set the variables alike."""
    database = influxdb.create_database()
    start_s = (int(time.time()) - POINTS * STEP_S - 60) // 10 * 10
    write_lines(influxdb.url, database,
                schema_lines(start_s, "plant_readings", "plant_alerts", "plant_forecasts",
                             "plant_summaries"))
    texts = {"measurement": "plant_readings", "alert_measurement": "plant_alerts",
             "forecast_measurement": "plant_forecasts", "summary_measurement": "plant_summaries"}
    for item in dashboard_queries(load_dashboard()):
        query = substitute(item.query, variables, (start_s * 1000, (start_s + POINTS * STEP_S) * 1000),
                           interval_for(item, 10), texts)
        check(item.key, influxql(influxdb.url, database, query), variables)


# ---------------------------------------------------------------------------
# The same queries after a short run of the real detector service
# ---------------------------------------------------------------------------

PIPE_SITE, PIPE_STREAMS, PIPE_POINTS, PIPE_SPIKE_AT, PIPE_SPIKED = "dash-1", 4, 120, 100, 1
PIPE_CHUNKS = 3
PIPE_WARN_ABOVE = 21.5              # an early-warning limit some streams sit above


def pipeline_check(key: str, series: list[dict[str, Any]]) -> None:
    """What each query must show after the detector saw a calm run with one spiked stream."""
    table = rows(series)
    spiked = (PIPE_SITE, f"dev-{PIPE_SPIKED}", "temperature")
    all_streams = {(PIPE_SITE, f"dev-{s}", "temperature") for s in range(PIPE_STREAMS)}
    by_stream = {stream_of(s["tags"]) for s in series if s.get("tags", {}).get("metric")}
    if key.startswith("variable:"):
        expected = {"site": {PIPE_SITE}, "device": {d for _, d, _ in all_streams},
                    "metric": {"temperature"}}[key.split(":", 1)[1]]
        assert {r["value"] for r in table} == expected, key
    elif key.startswith("panel:$metric: value"):
        assert by_stream == all_streams, key
        if key.endswith(":C"):
            assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in table), key
    elif key in ("panel:Hourly mean, min and max:A", "panel:Daily summaries:A"):
        # A two-minute run closes no hour: the summary queries run, on what there is.
        assert {stream_of(r) for r in table} <= all_streams, key
    elif key == "annotation:Early warnings":
        # Streams sitting above the limit, and the spiked one (its forecast jumps above).
        warned = {(PIPE_SITE, f"dev-{s}", "temperature") for s in range(PIPE_STREAMS)
                  if 20.0 + s > PIPE_WARN_ABOVE} | {spiked}
        assert {stream_of(r) for r in table} == warned and warned, key
    elif key == "panel:Raw detector scores:A":
        assert by_stream == all_streams, key
        assert any(v is not None for r in table for k, v in r.items()
                   if k.startswith("max_score_")), key
    elif key == "panel:Anomalous readings:A":
        assert sum(r["anomalous"] for r in table if stream_of(r) == spiked) > 0, key
    elif key in ("panel:Alerts:A", "annotation:Alerts"):
        assert any(stream_of(r) == spiked and r["state"] == "firing" for r in table), key
        assert all(r["text"] for r in table), key
    elif key == "panel:Alerts in range:A":
        assert {s["tags"]["state"] for s in series} >= {"firing"}, key
    elif key == "annotation:Anomalies":
        assert table and {stream_of(r) for r in table} >= {spiked}, key
    elif key == "panel:Ingestion rate:A":
        assert max(r["readings in"] or 0 for r in table) > 0, key
        assert max(r["points written"] or 0 for r in table) > 0, key
    elif key in ("panel:Rejections:A", "panel:Alert and spool activity:A",
                 "panel:Alert and spool activity:B"):
        assert {r["service"] for r in table} == {"detector"}, key
    else:
        raise AssertionError(f"no pipeline expectation for dashboard query {key}")


@pytest.mark.slow
def test_dashboard_queries_after_a_real_detector_run(tmp_path, mosquitto, influxdb):
    from detector_service.service import Detector, Feeder, detector_config
    from harness import wait_until

    database = influxdb.create_database()
    config = detector_config(tmp_path, mosquitto,
                             influx={"url": influxdb.url, "database": database},
                             detector={"output": {"stats_interval_s": 1}, "input": {
                                 "subscriptions": [f"iotwatch/readings/{PIPE_SITE}/#"]},
                                 "forecast": {"enabled": True, "season_s": 0, "horizon": 5,
                                              "every": 5, "model": {"warmup": 10},
                                              "warnings": [{"match": "+/+/temperature",
                                                            "limit": PIPE_WARN_ABOVE}]}})
    detector = Detector(tmp_path, config, mosquitto)
    start_s = int(time.time()) - PIPE_POINTS - 5
    try:
        detector.start()
        feeder = Feeder(mosquitto)
        per_chunk = PIPE_POINTS // PIPE_CHUNKS
        for chunk in range(PIPE_CHUNKS):
            # Spread the input over several 10 s buckets so the rate panels have slopes.
            bucket = int(time.time()) // 10
            for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
                for s in range(PIPE_STREAMS):
                    value = 20.0 + s + ((i * 7919 + s * 104729) % 13) * 0.05
                    if s == PIPE_SPIKED and PIPE_SPIKE_AT <= i < PIPE_SPIKE_AT + 3:
                        value += 50.0
                    feeder.reading(PIPE_SITE, f"dev-{s}", "temperature", start_s + i, value)
            feeder.flush()
            done = (chunk + 1) * per_chunk * PIPE_STREAMS
            wait_until(lambda n=done: influxdb.count("readings", db=database) >= n, 60,
                       what=f"{done} points stored")
            wait_until(lambda b=bucket: int(time.time()) // 10 > b, 30, what="next 10 s bucket")
        feeder.close()
        wait_until(lambda: influxdb.count("alerts", db=database) >= 1, 60, what="an alert point")
        # One more counters point after the last change, so the last slope is visible.
        written = influxdb.count("iotwatch_service", db=database)
        wait_until(lambda: influxdb.count("iotwatch_service", db=database) > written, 30,
                   what="a later iotwatch_service point")
    finally:
        detector.close()
    time_range = (start_s * 1000, (int(time.time()) + 1) * 1000)
    dashboard = load_dashboard()
    for item in dashboard_queries(dashboard):
        query = substitute(item.query, {"site": [PIPE_SITE], "device": None, "metric": None},
                           time_range, interval_for(item, 2), text_variables(dashboard))
        pipeline_check(item.key, influxql(influxdb.url, database, query))
